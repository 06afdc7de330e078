// The live operations page served at GET /dashboard: one self-contained HTML document (inline CSS and
// script; no external scripts, fonts or images) that polls GET /dashboard/data every second and draws
// its charts itself on <canvas>. It shows only what that JSON holds: configured names and numbers.
#pragma once

#include <string_view>

namespace sluice {

// The page, built once; valid for the process lifetime.
std::string_view dashboard_page();

// The Content-Security-Policy the page is served with: it forbids every external load, so a change that
// adds one fails in the browser rather than silently phoning out.
std::string_view dashboard_csp();

}  // namespace sluice
