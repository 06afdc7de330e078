// Built-in chat templates, by name: chatml, smollm2, qwen2, llama3, llama3.1, mistral.
#pragma once

#include <optional>
#include <span>
#include <string_view>

namespace sluice {

std::span<const std::string_view> builtin_template_names();
std::optional<std::string_view> builtin_template_source(std::string_view name);

}  // namespace sluice
