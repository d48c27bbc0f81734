// The single translation unit that compiles Asio and Beast (separate-compilation mode):
// every other file only includes their declarations, which keeps rebuilds fast.
#include <boost/asio/impl/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
#include <boost/beast/src.hpp>
