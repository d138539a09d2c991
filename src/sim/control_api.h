#pragma once
// tfs-sim's own control endpoints under /sim/ (never subject to faults, never counted as /v1
// traffic):
//   GET    /sim/faults        current fault set
//   POST   /sim/faults        replace the fault set (JSON object, see faults.h); PUT works too
//   DELETE /sim/faults        clear every fault
//   GET    /sim/stats         counters (see stats.h)
//   POST   /sim/stats/reset   zero the counters
//   GET    /sim/health        {"status": "ok"}
// Answers are JSON; errors are {"error": "..."} with 400 (bad fault set), 404 (unknown
// endpoint) or 405 (wrong method).

#include <string_view>

#include "sim/faults.h"
#include "sim/rest_api.h"
#include "sim/stats.h"

namespace tfs_sim {

class ControlApi {
 public:
  ControlApi(FaultState& faults, SimStats& stats) : faults_(faults), stats_(stats) {}

  // True for targets this API owns ("/sim" and everything under "/sim/").
  static bool owns(std::string_view target);

  // Thread-safe (FaultState and SimStats are).
  HttpReply handle(std::string_view method, std::string_view target, std::string_view body);

 private:
  FaultState& faults_;
  SimStats& stats_;
};

}  // namespace tfs_sim
