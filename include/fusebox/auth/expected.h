#pragma once
// Errors as values for the auth module's loaders and validators (C++20 has no std::expected).
// Messages never contain a secret, a key or a token: they name the field and what is wrong, so
// the config loader can print them with FILE:LINE:COLUMN and the dotted path it knows.

#include <cstddef>
#include <string>
#include <utility>
#include <variant>

namespace fusebox::auth {

struct Error {
  std::string message;
};

// Either a T or an Error.
template <class T>
class Expected {
 public:
  Expected(T value) : state_(std::move(value)) {}      // NOLINT: implicit, like std::expected
  Expected(Error error) : state_(std::move(error)) {}  // NOLINT

  bool ok() const { return state_.index() == 0; }
  explicit operator bool() const { return ok(); }
  // Precondition: ok().
  const T& value() const& { return std::get<0>(state_); }
  T& value() & { return std::get<0>(state_); }
  T&& value() && { return std::get<0>(std::move(state_)); }
  const T& operator*() const& { return value(); }
  const T* operator->() const { return &value(); }
  // Precondition: !ok().
  const std::string& error() const { return std::get<1>(state_).message; }

 private:
  std::variant<T, Error> state_;
};

// A problem with one entry of a list the config layer filled (api_keys[index], jwt.keys[index]):
// `field` is the entry's field ("hash", "priority_class"), empty for the entry as a whole.
struct FieldError {
  std::size_t index = 0;
  std::string field;
  std::string message;

  // "[2].hash: message" (the loader prefixes the list's path and the position).
  std::string to_string() const;
};

}  // namespace fusebox::auth
