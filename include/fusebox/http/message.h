#pragma once
// The HTTP/1.1 message types of the data path: Beast messages whose header fields live in
// per-thread recycled blocks (memory::BlockCache). A request and its answer carry a dozen or so
// fields, each its own allocation, made and freed on every request.

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <string>

#include "fusebox/common/block_cache.h"

namespace fusebox::http {

using FieldAllocator = memory::PooledAllocator<char>;
using Fields = boost::beast::http::basic_fields<FieldAllocator>;
using Request = boost::beast::http::request<boost::beast::http::string_body, Fields>;
using Response = boost::beast::http::response<boost::beast::http::string_body, Fields>;
using RequestParser =
    boost::beast::http::request_parser<boost::beast::http::string_body, FieldAllocator>;
using ResponseParser =
    boost::beast::http::response_parser<boost::beast::http::string_body, FieldAllocator>;

// A serialized message head made per request (an upstream request's).
using PooledString = memory::PooledString;

}  // namespace fusebox::http
