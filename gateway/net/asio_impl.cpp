// The one translation unit that compiles Asio, Asio's SSL support and Beast (separate-compilation mode, set
// for the whole library in gateway/CMakeLists.txt). Every other file includes only the headers it uses.
#include <boost/asio/impl/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
#include <boost/beast/src.hpp>
