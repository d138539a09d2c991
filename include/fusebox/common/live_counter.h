#pragma once
// Counts objects alive on one thread, through tokens they hold: a worker's handler knows when
// none of its calls is left (a configuration it served can then be retired safely).
// Single-threaded: tokens must be created and destroyed on the counter's thread.

#include <cstddef>
#include <utility>

namespace fusebox {

class LiveCounter {
 public:
  class Token {
   public:
    Token() = default;
    Token(Token&& other) noexcept : count_(std::exchange(other.count_, nullptr)) {}
    Token& operator=(Token&& other) noexcept {
      if (this != &other) {
        release();
        count_ = std::exchange(other.count_, nullptr);
      }
      return *this;
    }
    Token(const Token&) = delete;
    Token& operator=(const Token&) = delete;
    ~Token() { release(); }

   private:
    friend class LiveCounter;
    explicit Token(std::size_t* count) : count_(count) { ++*count_; }
    void release() {
      if (count_) --*count_;
      count_ = nullptr;
    }
    std::size_t* count_ = nullptr;
  };

  Token enter() { return Token(&count_); }
  std::size_t count() const { return count_; }

 private:
  std::size_t count_ = 0;
};

}  // namespace fusebox
