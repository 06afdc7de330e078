// One request/response on a client connection, as the handlers see it: plain request data in, awaitable
// writes out. Implemented by the HTTP session (session.cpp); handlers never touch Beast directly.
// Thread: every method runs on the connection's strand.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "gateway/core/target.h"

namespace sluice {

struct IncomingRequest {
  std::string method;         // "GET", "POST", ...
  std::string target;         // path and query as sent
  std::string path;           // path without the query
  std::string body;
  std::string authorization;  // the Authorization header, "" if absent
  std::string content_type;   // the Content-Type header, "" if absent
  std::chrono::steady_clock::time_point received_at{};  // when the whole request (body included) was read
};

using HeaderList = std::vector<std::pair<std::string, std::string>>;

class Exchange {
 public:
  virtual ~Exchange() = default;
  virtual const IncomingRequest& request() const = 0;
  virtual boost::asio::any_io_executor executor() const = 0;

  // A complete response. Returns false when the client is gone.
  virtual boost::asio::awaitable<bool> respond(int status, std::string body, std::string_view content_type,
                                               HeaderList extra = {}) = 0;
  // A streamed (chunked) text/event-stream response: the status line and headers go out on begin_stream.
  virtual boost::asio::awaitable<bool> begin_stream(HeaderList extra = {}) = 0;
  virtual boost::asio::awaitable<bool> write_chunk(std::string data) = 0;
  virtual boost::asio::awaitable<void> end_stream() = 0;
  // Ends a stream abnormally: the connection is closed without the terminating chunk, so no client can take
  // the cut response for a complete one.
  virtual void abort_stream() = 0;

  // Fires (once, on the strand) when the client disconnects while the response is being produced.
  virtual CancelSlot& client_gone() = 0;
};

}  // namespace sluice
