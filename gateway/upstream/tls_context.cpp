#include "gateway/upstream/tls_context.h"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <exception>

namespace sluice {

Result<std::shared_ptr<boost::asio::ssl::context>, TlsSetupError> make_client_tls_context(
    const TlsClientOptions& options) {
  namespace ssl = boost::asio::ssl;
  std::shared_ptr<ssl::context> ctx;
  try {
    ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  } catch (const std::exception& e) {
    return fail(TlsSetupError{std::string("cannot create a TLS context: ") + e.what()});
  }
  boost::system::error_code ec;
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                       ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::no_compression,
                   ec);
  if (ec) return fail(TlsSetupError{"cannot set TLS options: " + ec.message()});
  if (SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION) != 1)
    return fail(TlsSetupError{"cannot require TLS 1.2 or newer"});

  if (!options.verify_peer) {
    ctx->set_verify_mode(ssl::verify_none, ec);
    if (ec) return fail(TlsSetupError{"cannot disable peer verification: " + ec.message()});
    return ctx;
  }
  ctx->set_verify_mode(ssl::verify_peer, ec);
  if (ec) return fail(TlsSetupError{"cannot enable peer verification: " + ec.message()});
  if (!options.ca_file.empty()) {
    ctx->load_verify_file(options.ca_file, ec);
    if (ec) return fail(TlsSetupError{"cannot load ca_file '" + options.ca_file + "': " + ec.message()});
  } else {
    ctx->set_default_verify_paths(ec);
    if (ec) return fail(TlsSetupError{"cannot load the system trust store: " + ec.message()});
  }
  return ctx;
}

Status<TlsSetupError> prepare_tls_session(SSL* ssl, const std::string& host, bool host_is_ip, bool verify_peer) {
  if (!host_is_ip && SSL_set_tlsext_host_name(ssl, const_cast<char*>(host.c_str())) != 1)
    return fail(TlsSetupError{"cannot set the TLS server name '" + host + "'"});
  if (!verify_peer) return Ok{};
  if (host_is_ip) {
    if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str()) != 1)
      return fail(TlsSetupError{"cannot set the expected certificate address '" + host + "'"});
  } else {
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (SSL_set1_host(ssl, host.c_str()) != 1)
      return fail(TlsSetupError{"cannot set the expected certificate name '" + host + "'"});
  }
  return Ok{};
}

std::string tls_verify_failure(const SSL* ssl) {
  const long result = SSL_get_verify_result(ssl);
  if (result == X509_V_OK) return {};
  return std::string("certificate verification failed: ") + X509_verify_cert_error_string(result);
}

}  // namespace sluice
