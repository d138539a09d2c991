#include "fusebox/degrade/chain.h"

#include <nlohmann/json.hpp>

#include "fusebox/logging/logging.h"
#include "fusebox/metrics/family_builder.h"

namespace fusebox::degrade {

const char* to_string(Reason reason) {
  switch (reason) {
    case Reason::none: return "none";
    case Reason::breaker_open: return "breaker_open";
    case Reason::no_healthy_backend: return "no_healthy_backend";
    case Reason::upstream_error: return "upstream_error";
    case Reason::timeout: return "timeout";
    case Reason::overload: return "overload";
  }
  return "none";
}

namespace {
const char* verb_suffix(http::RestVerb verb) {
  switch (verb) {
    case http::RestVerb::predict: return ":predict";
    case http::RestVerb::classify: return ":classify";
    case http::RestVerb::regress: return ":regress";
    case http::RestVerb::metadata: return "/metadata";
    case http::RestVerb::status: return "";
  }
  return "";
}

// Model names in a path are percent-encoded like TF Serving decodes them.
std::string encode_segment(std::string_view s) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '-' || c == '_' || c == '.' || c == '~';
    if (plain) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}
}  // namespace

std::string rewrite_target(const http::RestTarget& original, std::string_view original_target,
                           const config::FallbackTier& tier) {
  return rewrite_target(original, original_target, tier.model, tier.version, tier.label);
}

std::string rewrite_target(const http::RestTarget& original, std::string_view original_target,
                           std::string_view model, std::int64_t version, std::string_view label) {
  std::string target = "/v1/models/" + encode_segment(model);
  if (version > 0) {
    target += "/versions/" + std::to_string(version);
  } else if (!label.empty()) {
    target += "/labels/" + encode_segment(label);
  }
  target += verb_suffix(original.verb);
  if (auto q = original_target.find('?'); q != std::string_view::npos) {
    target += original_target.substr(q);
  }
  return target;
}

std::optional<std::string> rewrite_signature(std::string_view body, std::string_view signature) {
  auto json = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object()) return std::nullopt;
  json["signature_name"] = std::string(signature);
  return json.dump();
}

std::string tier_name(const config::FallbackTier& tier) {
  switch (tier.kind) {
    case config::TierKind::model: return "model:" + tier.model;
    case config::TierKind::cache: return "cache";
    case config::TierKind::default_: return "default";
    case config::TierKind::rules: return "rules";
  }
  return "default";
}

const char* to_string(Protocol protocol) { return protocol == Protocol::grpc ? "grpc" : "rest"; }

namespace {
std::size_t protocols(const config::Config& config) {
  return config.listeners.grpc.enabled ? kProtocolCount : 1;
}

std::size_t count_cells(const config::Config& config) {
  std::size_t n = 0;
  for (const auto& r : config.routes) n += (r.fallbacks.size() + 1) * kReasonCount;
  return n * protocols(config);
}
}  // namespace

DegradeMetrics::DegradeMetrics(const config::Config& config, std::size_t shards)
    : protocols_(protocols(config)),
      counts_(shards, count_cells(config)),
      last_tier_(std::make_unique<std::atomic<std::uint32_t>[]>(config.routes.size())) {
  std::size_t offset = 0;
  for (const auto& r : config.routes) {
    RouteTiers rt{r.name, {"primary"}, offset};
    for (const auto& t : r.fallbacks) rt.tiers.push_back(tier_name(t));
    offset += rt.tiers.size() * kReasonCount * protocols_;
    routes_.push_back(std::move(rt));
  }
}

void DegradeMetrics::record(std::size_t shard, std::size_t route, std::size_t tier,
                            Reason reason, Protocol protocol) {
  const auto& rt = routes_[route];
  auto code = static_cast<std::uint32_t>(tier * kReasonCount + static_cast<std::size_t>(reason));
  auto p = std::min(static_cast<std::size_t>(protocol), protocols_ - 1);
  counts_.add(shard, rt.offset + code * protocols_ + p);
  // One line per change of the route's answering tier, not per request.
  // Read first: the line is shared by every worker and almost never changes.
  if (last_tier_[route].load(std::memory_order_relaxed) == code) return;
  auto before = last_tier_[route].exchange(code, std::memory_order_relaxed);
  if (before != code) {
    auto from_tier = before / kReasonCount;
    auto from_reason = static_cast<Reason>(before % kReasonCount);
    auto level = tier == 0 ? spdlog::level::info : spdlog::level::warn;
    logging::log().log(level, "route {} now answered by tier {} (reason {}), was {} (reason {})",
                       rt.route, rt.tiers[tier], to_string(reason), rt.tiers[from_tier],
                       to_string(from_reason));
  }
}

void DegradeMetrics::collect(std::vector<prometheus::MetricFamily>& out) const {
  auto family = metrics::make_family(
      "fusebox_responses_total",
      "Answers by route, by the tier of the degradation chain that gave them, why it degraded "
      "and the protocol the request came by.",
      prometheus::MetricType::Counter);
  for (const auto& rt : routes_) {
    for (std::size_t t = 0; t < rt.tiers.size(); ++t) {
      for (std::size_t r = 0; r < kReasonCount; ++r) {
        if (t == 0 && r != 0) continue;  // the primary answers only without a reason
        if (t != 0 && r == 0) continue;  // a fallback always has one
        for (std::size_t p = 0; p < protocols_; ++p) {
          auto n = counts_.sum(rt.offset + (t * kReasonCount + r) * protocols_ + p);
          metrics::add_counter(family,
                               {{"route", rt.route},
                                {"tier", rt.tiers[t]},
                                {"reason", to_string(static_cast<Reason>(r))},
                                {"protocol", to_string(static_cast<Protocol>(p))}},
                               static_cast<double>(n));
        }
      }
    }
  }
  out.push_back(std::move(family));
}

}  // namespace fusebox::degrade
