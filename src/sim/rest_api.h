#pragma once
// TF Serving's REST surface (model_servers/http_rest_api_handler.cc, http_rest_api_util.cc,
// http_server.cc) as tfs-sim serves it. Pure: takes a method, a request target and a body,
// returns status, content type and body. No sockets, no clock, no randomness.
//
// Matching follows TF exactly:
//  - the dispatcher only takes paths matching (?i)/v1/.* (the query string is part of the path,
//    as in TF's uri_path()); anything else is libevent's plain HTML 404 with Connection: close;
//  - POST must fully match (?i)/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?
//    :(classify|regress|predict); GET must fully match
//    (?i)/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:\/(metadata))?
//  - the captured verb is then compared case-sensitively ("PREDICT" stays Malformed request,
//    "/METADATA" is a status request), as TF's handler does;
//  - model name and label are curl-unescaped; the version must fit int64.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sim/faults.h"
#include "sim/model.h"
#include "sim/tf_json.h"

namespace tfs_sim {

enum class RouteKind {
  not_v1,   // plain 404
  bad_uri,  // the target is not a URI libevent accepts: plain 400
  error,    // TF answers `error` (malformed request, missing model name, bad version...)
  predict,
  classify,
  regress,
  status,
  metadata,
};

struct Route {
  RouteKind kind = RouteKind::not_v1;
  std::string path;   // the path TF sees (with query string and fragment)
  std::string model;  // URL-decoded; may be empty for status/metadata
  std::optional<std::int64_t> version;
  std::optional<std::string> label;  // URL-decoded
  TfStatus error;                    // kind == error
};

// Classifies a request the way TF Serving's dispatcher and handler do.
Route match_route(std::string_view method, std::string_view target);

// curl_easy_unescape(): "%XX" with two hex digits becomes that byte; anything else (including
// '+') is copied as is.
std::string curl_unescape(std::string_view in);

struct HttpReply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  bool close_connection = false;  // libevent closes after its own error pages
};

// libevent's evhttp_send_error() page for a status ("404 Not Found", ...), HTML.
HttpReply libevent_error_page(int status);

struct RestApiConfig {
  std::vector<ServedModel> models;
  std::int64_t version = 1;
  // Version labels: label -> version (nullopt: whatever version the model serves right now).
  std::map<std::string, std::optional<std::int64_t>> labels;
  JsonStyle style = JsonStyle::compact;
};

class RestApi {
 public:
  explicit RestApi(RestApiConfig config);

  // Answers one request. `faults` supplies model_state / version / not_available_status for the
  // models it applies to; the other faults (latency, errors, ...) are the session's business.
  HttpReply handle(const Route& route, std::string_view body, const FaultSet& faults) const;

  const RestApiConfig& config() const { return config_; }

  // The lookups behind the answers, shared with the gRPC side (which builds a Route from the
  // request's ModelSpec): ServerCore::GetServableHandle() for inference and metadata...
  TfStatus resolve_servable(const Route& route, const FaultSet& faults, LinearModel& model,
                            std::int64_t& version) const;

  // ...and the model status lookup: the served version and its state, or TF's error.
  struct StatusLookup {
    TfStatus error;
    std::int64_t version = 0;
    ModelState state = ModelState::available;
  };
  StatusLookup lookup_status(const Route& route, const FaultSet& faults) const;

 private:
  const ServedModel* find_model(std::string_view name) const;
  HttpReply predict(const Route& route, std::string_view body, const FaultSet& faults) const;
  HttpReply classify_or_regress(const Route& route, std::string_view body, const FaultSet& faults,
                                bool classify) const;
  HttpReply status(const Route& route, const FaultSet& faults) const;
  HttpReply metadata(const Route& route, const FaultSet& faults) const;
  HttpReply error_reply(const TfStatus& status) const;
  HttpReply ok_reply(std::string body) const;

  RestApiConfig config_;
};

}  // namespace tfs_sim
