// TLS for connections to remote providers. One client context per provider (built once at set-up, then only
// read, so connections on any thread may create sessions from it) and a per-connection step that sets SNI and
// the name the peer's certificate must match.
//
// Policy: TLS 1.2 or newer; the peer is verified against the system trust store, or against `ca_file` when
// one is configured; verification is off only when the provider's config says tls_verify: false.
#pragma once

#include <memory>
#include <string>

#include <boost/asio/ssl/context.hpp>

#include "engine/util/result.h"

namespace sluice {

struct TlsClientOptions {
  bool verify_peer = true;
  std::string ca_file;  // PEM bundle; "" = the system's trust store
};

struct TlsSetupError {
  std::string message;
};

Result<std::shared_ptr<boost::asio::ssl::context>, TlsSetupError> make_client_tls_context(
    const TlsClientOptions& options);

// Prepares one connection's session before its handshake: SNI (host names only; IP literals are not sent,
// as RFC 6066 requires) and, when verifying, the host name or IP address the certificate must carry.
Status<TlsSetupError> prepare_tls_session(SSL* ssl, const std::string& host, bool host_is_ip, bool verify_peer);

// After a failed handshake: why the peer's certificate was rejected, or "" when verification was not the
// reason.
std::string tls_verify_failure(const SSL* ssl);

}  // namespace sluice
