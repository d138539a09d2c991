#pragma once
// Growing a std::string that is about to be overwritten, without writing its new characters
// first. std::string::resize zero-fills: for a request body read straight from a socket that is
// a whole extra pass over the memory (as costly as the read's own copy for a 1 MiB body).
// C++23 has resize_and_overwrite; until then, with libstdc++, the string's own private length
// setter is reached through explicit template instantiation, which the language exempts from
// access checking (the approach folly's "UninitializedMemoryHacks" takes). Elsewhere this falls
// back to resize().

#include <string>

namespace fusebox {

#if defined(__GLIBCXX__) && _GLIBCXX_USE_CXX11_ABI
namespace detail {
using StringSetLength = void (std::string::*)(std::string::size_type);
StringSetLength string_set_length();
template <StringSetLength Member>
struct ExposeStringSetLength {
  friend StringSetLength string_set_length() { return Member; }
};
template struct ExposeStringSetLength<&std::string::_M_set_length>;
}  // namespace detail

// Makes `s` `size` characters long; characters past the old size are unspecified until written.
inline void resize_uninitialized(std::string& s, std::string::size_type size) {
  if (size <= s.size()) return s.resize(size);
  s.reserve(size);
  (s.*detail::string_set_length())(size);
}
#else
inline void resize_uninitialized(std::string& s, std::string::size_type size) { s.resize(size); }
#endif

}  // namespace fusebox
