// Opens the listening TCP socket that the supervisor keeps for its whole life and lends to each worker.
#pragma once

#include <cstdint>
#include <string>

#include "engine/util/result.h"

namespace sluice {

// Binds host:port (an IPv4 or IPv6 literal, or "localhost") and listens with the system's largest backlog,
// so connections queue in the kernel while no worker accepts. Port 0 picks a free port. The descriptor is
// close-on-exec; the caller owns it.
Result<int, std::string> open_listen_socket(const std::string& host, std::uint16_t port);

// The port a bound socket listens on, or 0 when it cannot be read.
std::uint16_t listen_socket_port(int fd);

}  // namespace sluice
