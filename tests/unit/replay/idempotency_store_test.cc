#include "fusebox/replay/idempotency_store.h"

#include <gtest/gtest.h>

#include <atomic>
#include <deque>
#include <latch>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

namespace fusebox::replay {

// Failure messages show every field of both sides.
void PrintTo(const IdempotencyStats& s, std::ostream* os) {
  *os << "{entries " << s.entries << ", in_flight " << s.in_flight << ", bytes " << s.bytes
      << ", leads " << s.leads << ", joins " << s.joins << ", replays " << s.replays
      << ", mismatches " << s.mismatches << ", evictions " << s.evictions << ", expirations "
      << s.expirations << ", overflows " << s.overflows << ", too_large " << s.too_large << "}";
}

namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using Response = std::shared_ptr<const StoredResponse>;
using Stats = IdempotencyStats;

constexpr std::uint64_t kFingerprint = 0xf00d;
constexpr std::uint64_t kOtherFingerprint = 0xbad;
constexpr std::uint64_t kProbeFingerprint = 0x9e0be;

config::IdempotencyStoreConfig one_shard(std::uint64_t max_bytes) {
  config::IdempotencyStoreConfig config;
  config.max_bytes = max_bytes;
  config.shards = 1;
  return config;
}

Response response_of(std::string body) {
  auto response = std::make_shared<StoredResponse>();
  response->body = std::move(body);
  return response;
}

// Hands out waiters that record their calls.
struct WaiterLog {
  std::vector<Response> calls;
  IdempotencyStore::Waiter waiter() {
    return [this](Response r) { calls.push_back(std::move(r)); };
  }
};

// A waiter that must never run; `alive` tells whether the store still holds it.
IdempotencyStore::Waiter forbidden_waiter(const std::shared_ptr<int>& alive) {
  return [alive](Response) { ADD_FAILURE() << "this waiter must not be called"; };
}

void lead_and_complete(IdempotencyStore& store, std::string_view key, Response response,
                       std::chrono::nanoseconds retain_for) {
  const auto begun = store.begin(key, kFingerprint, nullptr);
  ASSERT_EQ(begun.outcome, BeginOutcome::lead) << key;
  ASSERT_FALSE(begun.untracked) << key;
  ASSERT_TRUE(store.complete(key, std::move(response), retain_for)) << key;
}

// Whether `key` has a live entry, without changing its recency: a foreign fingerprint meets
// `mismatch` at a live entry; where there is none it leads, and that entry is dropped again.
// Counts one mismatch or one lead.
bool is_live(IdempotencyStore& store, std::string_view key) {
  const auto probe = store.begin(key, kProbeFingerprint, nullptr);
  if (probe.outcome == BeginOutcome::mismatch) return true;
  EXPECT_EQ(probe.outcome, BeginOutcome::lead) << key;
  if (!probe.untracked) store.complete(key, response_of("probe"), {});
  return false;
}

// A clock and a store with room to spare (one shard, nothing is evicted); tests about the
// budget make their own store on the same clock.
class IdempotencyStoreTest : public testing::Test {
 protected:
  ManualClock clock_;
  IdempotencyStore store_{one_shard(1 << 20), clock_};
};

TEST_F(IdempotencyStoreTest, ChargesCountKeyHeadersBodyAndOverhead) {
  StoredResponse response;
  response.body = "abcd";
  response.headers = {{"content-type", "application/json"}, {"x-a", "1"}};
  EXPECT_EQ(response.bytes(),
            kStoredResponseOverheadBytes + 4 + 2 * kStoredHeaderOverheadBytes + 12 + 16 + 3 + 1);
  EXPECT_EQ(in_flight_charge("route|key"), 9 + kIdempotencyEntryOverheadBytes);
  EXPECT_EQ(completed_charge("route|key", response),
            in_flight_charge("route|key") + response.bytes());
}

// One key through its whole life: lead, joins, completion, replays until the TTL, expiry,
// a new lead, completion without retention, and a lead again.
TEST_F(IdempotencyStoreTest, StateMachineTable) {
  enum class Op { begin, complete };
  struct Step {
    const char* what;
    milliseconds advance;  // the clock moves this much before the step
    Op op;
    BeginOutcome outcome;     // begin: expected outcome
    int answer_of;            // begin, joined or replay: the step whose response it gets
    milliseconds retain_for;  // complete: its argument
    bool completes;           // complete: expected return value
  };
  auto begins = [](const char* what, int advance_ms, BeginOutcome outcome, int answer_of = -1) {
    return Step{what, milliseconds(advance_ms), Op::begin, outcome, answer_of, {}, false};
  };
  auto completes = [](const char* what, int advance_ms, int retain_ms, bool completes) {
    return Step{what, milliseconds(advance_ms), Op::complete, {},
                -1,   milliseconds(retain_ms),  completes};
  };
  const std::vector<Step> steps = {
      begins("first request leads", 0, BeginOutcome::lead),
      begins("same request joins", 5, BeginOutcome::joined, 4),
      begins("another joins", 0, BeginOutcome::joined, 4),
      begins("the leader has not answered yet", 0, BeginOutcome::joined, 4),
      completes("leader completes, kept 1 s", 10, 1000, true),
      begins("replayed", 0, BeginOutcome::replay, 4),
      completes("a second complete is a no-op", 0, 1000, false),
      begins("still the first answer", 999, BeginOutcome::replay, 4),
      begins("expired at the TTL: leads again", 1, BeginOutcome::lead),
      begins("joins the new lead", 0, BeginOutcome::joined, 10),
      completes("completes without retention", 0, 0, true),
      begins("nothing kept: leads", 0, BeginOutcome::lead),
  };

  const std::string key = "route|key-1";
  std::vector<WaiterLog> logs(steps.size());
  std::vector<Response> responses(steps.size());
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const Step& step = steps[i];
    SCOPED_TRACE(testing::Message() << "step " << i << ": " << step.what);
    clock_.advance(step.advance);
    if (step.op == Op::begin) {
      const auto result = store_.begin(key, kFingerprint, logs[i].waiter());
      EXPECT_EQ(to_string(result.outcome), std::string(to_string(step.outcome)));
      EXPECT_FALSE(result.untracked);
      if (step.outcome == BeginOutcome::replay) {
        ASSERT_GE(step.answer_of, 0);
        EXPECT_EQ(result.response, responses[static_cast<std::size_t>(step.answer_of)]);
      } else {
        EXPECT_EQ(result.response, nullptr);
      }
    } else {
      responses[i] = response_of("answer of step " + std::to_string(i));
      EXPECT_EQ(store_.complete(key, responses[i], step.retain_for), step.completes);
    }
  }

  // Every joiner was called once, with the very response its leader completed with; nobody
  // else was called.
  for (std::size_t i = 0; i < steps.size(); ++i) {
    SCOPED_TRACE(testing::Message() << "waiter of step " << i << ": " << steps[i].what);
    if (steps[i].op == Op::begin && steps[i].outcome == BeginOutcome::joined) {
      ASSERT_EQ(logs[i].calls.size(), 1u);
      EXPECT_EQ(logs[i].calls[0], responses[static_cast<std::size_t>(steps[i].answer_of)]);
    } else {
      EXPECT_TRUE(logs[i].calls.empty());
    }
  }
  EXPECT_EQ(store_.stats(), (Stats{.entries = 1,
                                   .in_flight = 1,
                                   .bytes = in_flight_charge(key),
                                   .leads = 3,
                                   .joins = 4,
                                   .replays = 2,
                                   .expirations = 1}));
}

TEST_F(IdempotencyStoreTest, MismatchWhileInFlightAndAfterCompletion) {
  ASSERT_EQ(store_.begin("k", kFingerprint, nullptr).outcome, BeginOutcome::lead);

  const auto alive = std::make_shared<int>(0);
  auto result = store_.begin("k", kOtherFingerprint, forbidden_waiter(alive));
  EXPECT_EQ(result.outcome, BeginOutcome::mismatch);
  EXPECT_EQ(result.response, nullptr);
  EXPECT_EQ(alive.use_count(), 1);  // the waiter was not kept

  const Response answer = response_of("first");
  ASSERT_TRUE(store_.complete("k", answer, milliseconds(1000)));
  result = store_.begin("k", kOtherFingerprint, forbidden_waiter(alive));
  EXPECT_EQ(result.outcome, BeginOutcome::mismatch);
  EXPECT_EQ(result.response, nullptr);  // another request's answer is never handed out
  EXPECT_EQ(alive.use_count(), 1);
  EXPECT_EQ(store_.begin("k", kFingerprint, nullptr).response, answer);  // still replayed

  clock_.advance(milliseconds(1000));
  EXPECT_EQ(store_.begin("k", kOtherFingerprint, nullptr).outcome, BeginOutcome::lead);
  EXPECT_EQ(store_.stats(), (Stats{.entries = 1,
                                   .in_flight = 1,
                                   .bytes = in_flight_charge("k"),
                                   .leads = 2,
                                   .replays = 1,
                                   .mismatches = 2,
                                   .expirations = 1}));
}

TEST_F(IdempotencyStoreTest, NoRetentionRemovesTheEntryAfterWakingWaiters) {
  struct Case {
    const char* what;
    std::chrono::nanoseconds retain_for;
    bool null_response;
  };
  for (const Case& c :
       {Case{"zero", milliseconds(0), false}, Case{"negative", milliseconds(-5), false},
        Case{"null response", milliseconds(1000), true}}) {
    SCOPED_TRACE(c.what);
    ManualClock clock;
    IdempotencyStore store(one_shard(1 << 20), clock);
    WaiterLog log;
    ASSERT_EQ(store.begin("k", kFingerprint, nullptr).outcome, BeginOutcome::lead);
    ASSERT_EQ(store.begin("k", kFingerprint, log.waiter()).outcome, BeginOutcome::joined);
    const Response answer = c.null_response ? nullptr : response_of("x");
    EXPECT_TRUE(store.complete("k", answer, c.retain_for));
    ASSERT_EQ(log.calls.size(), 1u);
    EXPECT_EQ(log.calls[0], answer);
    EXPECT_EQ(store.stats(), (Stats{.leads = 1, .joins = 1}));
    EXPECT_EQ(store.begin("k", kFingerprint, nullptr).outcome, BeginOutcome::lead);
  }
}

TEST_F(IdempotencyStoreTest, CompletingAKeyNotInFlightIsANoOp) {
  EXPECT_FALSE(store_.complete("unknown", response_of("x"), milliseconds(1000)));
  EXPECT_EQ(store_.stats(), Stats{});
  EXPECT_EQ(store_.begin("unknown", kFingerprint, nullptr).outcome, BeginOutcome::lead);
  EXPECT_FALSE(store_.complete("other", response_of("x"), milliseconds(1000)));
  EXPECT_EQ(
      store_.stats(),
      (Stats{.entries = 1, .in_flight = 1, .bytes = in_flight_charge("unknown"), .leads = 1}));
}

TEST_F(IdempotencyStoreTest, EvictsLeastRecentlyUsedAnswersUnderTheByteBudget) {
  const std::string body(1000, 'x');
  const std::uint64_t each = completed_charge("k1", *response_of(body));
  // Room for three answers; the slack (half an answer) holds a probe's in-flight entry.
  ASSERT_LT(in_flight_charge("k1"), each / 2);
  IdempotencyStore store(one_shard(3 * each + each / 2), clock_);
  for (const char* key : {"k1", "k2", "k3"}) {
    lead_and_complete(store, key, response_of(body), hours(1));
  }
  // A replay makes k1 the most recent: order k1, k3, k2.
  ASSERT_EQ(store.begin("k1", kFingerprint, nullptr).outcome, BeginOutcome::replay);
  lead_and_complete(store, "k4", response_of(body), hours(1));  // evicts k2
  EXPECT_FALSE(is_live(store, "k2"));
  EXPECT_TRUE(is_live(store, "k1"));
  EXPECT_TRUE(is_live(store, "k3"));
  EXPECT_TRUE(is_live(store, "k4"));
  lead_and_complete(store, "k5", response_of(body), hours(1));  // evicts k3 (probes don't touch)
  EXPECT_FALSE(is_live(store, "k3"));
  EXPECT_TRUE(is_live(store, "k1"));
  EXPECT_TRUE(is_live(store, "k4"));
  EXPECT_TRUE(is_live(store, "k5"));
  EXPECT_EQ(store.stats(), (Stats{.entries = 3,
                                  .bytes = 3 * each,
                                  .leads = 5 + 2,  // five keys, two probes of evicted ones
                                  .replays = 1,
                                  .mismatches = 6,
                                  .evictions = 2}));
}

// One shard with room for one answer and half a request in flight.
config::IdempotencyStoreConfig room_for_one_answer(const StoredResponse& answer) {
  return one_shard(completed_charge("k1", answer) + in_flight_charge("k2") / 2);
}

TEST_F(IdempotencyStoreTest, RequestInFlightEvictsAnswersToMakeRoom) {
  const Response answer = response_of(std::string(1000, 'x'));
  IdempotencyStore store(room_for_one_answer(*answer), clock_);
  lead_and_complete(store, "k1", answer, hours(1));
  const auto result = store.begin("k2", kFingerprint, nullptr);
  EXPECT_EQ(result.outcome, BeginOutcome::lead);
  EXPECT_FALSE(result.untracked);
  EXPECT_EQ(store.stats(), (Stats{.entries = 1,
                                  .in_flight = 1,
                                  .bytes = in_flight_charge("k2"),
                                  .leads = 2,
                                  .evictions = 1}));
}

// The answer fits the shard's budget, but requests in flight hold the rest of it.
TEST_F(IdempotencyStoreTest, AnswerGivesWayToRequestsInFlight) {
  const Response answer = response_of(std::string(1000, 'x'));
  IdempotencyStore store(room_for_one_answer(*answer), clock_);
  ASSERT_EQ(store.begin("k1", kFingerprint, nullptr).outcome, BeginOutcome::lead);
  ASSERT_FALSE(store.begin("k2", kFingerprint, nullptr).untracked);
  WaiterLog log;
  ASSERT_EQ(store.begin("k1", kFingerprint, log.waiter()).outcome, BeginOutcome::joined);
  EXPECT_TRUE(store.complete("k1", answer, hours(1)));
  ASSERT_EQ(log.calls.size(), 1u);
  EXPECT_EQ(log.calls[0], answer);
  EXPECT_EQ(store.stats(), (Stats{.entries = 1,
                                  .in_flight = 1,
                                  .bytes = in_flight_charge("k2"),
                                  .leads = 2,
                                  .joins = 1,
                                  .evictions = 1}));
}

TEST_F(IdempotencyStoreTest, ResponseLargerThanTheShardBudgetIsDeliveredButNotKept) {
  config::IdempotencyStoreConfig config;
  config.max_bytes = 4 * 4096;
  config.shards = 4;  // 4096 bytes per shard
  IdempotencyStore store(config, clock_);
  WaiterLog log;
  ASSERT_EQ(store.begin("k", kFingerprint, nullptr).outcome, BeginOutcome::lead);
  ASSERT_EQ(store.begin("k", kFingerprint, log.waiter()).outcome, BeginOutcome::joined);
  const Response big = response_of(std::string(5000, 'x'));
  EXPECT_TRUE(store.complete("k", big, hours(1)));
  ASSERT_EQ(log.calls.size(), 1u);
  EXPECT_EQ(log.calls[0], big);
  EXPECT_EQ(store.stats(), (Stats{.leads = 1, .joins = 1, .too_large = 1}));

  // Within a shard's share it is kept.
  const Response fits = response_of(std::string(3000, 'x'));
  lead_and_complete(store, "k", fits, hours(1));
  EXPECT_EQ(store.begin("k", kFingerprint, nullptr).response, fits);
  EXPECT_EQ(store.stats(), (Stats{.entries = 1,
                                  .bytes = completed_charge("k", *fits),
                                  .leads = 2,
                                  .joins = 1,
                                  .replays = 1,
                                  .too_large = 1}));
}

TEST_F(IdempotencyStoreTest, ShardFullOfRequestsInFlightLeadsUntracked) {
  const std::uint64_t pending = in_flight_charge("k1");
  IdempotencyStore store(one_shard(2 * pending + pending / 2), clock_);
  ASSERT_FALSE(store.begin("k1", kFingerprint, nullptr).untracked);
  ASSERT_FALSE(store.begin("k2", kFingerprint, nullptr).untracked);

  auto result = store.begin("k3", kFingerprint, nullptr);
  EXPECT_EQ(result.outcome, BeginOutcome::lead);
  EXPECT_TRUE(result.untracked);
  // No entry was made, so the same request leads again instead of joining.
  const auto alive = std::make_shared<int>(0);
  result = store.begin("k3", kFingerprint, forbidden_waiter(alive));
  EXPECT_EQ(result.outcome, BeginOutcome::lead);
  EXPECT_TRUE(result.untracked);
  EXPECT_EQ(alive.use_count(), 1);
  EXPECT_FALSE(store.complete("k3", response_of("x"), hours(1)));
  EXPECT_EQ(
      store.stats(),
      (Stats{.entries = 2, .in_flight = 2, .bytes = 2 * pending, .leads = 4, .overflows = 2}));

  // Once a request finishes there is room again.
  ASSERT_TRUE(store.complete("k1", response_of("x"), milliseconds(0)));
  result = store.begin("k3", kFingerprint, nullptr);
  EXPECT_EQ(result.outcome, BeginOutcome::lead);
  EXPECT_FALSE(result.untracked);
  EXPECT_EQ(store.begin("k3", kFingerprint, nullptr).outcome, BeginOutcome::joined);
  EXPECT_EQ(store.stats(), (Stats{.entries = 2,
                                  .in_flight = 2,
                                  .bytes = 2 * pending,
                                  .leads = 5,
                                  .joins = 1,
                                  .overflows = 2}));
}

// Met by begin() before the sweep reaches it (it is the most recently used of many answers).
TEST_F(IdempotencyStoreTest, ExpiredAnswerIsNeverReplayed) {
  const Response old_answer = response_of("old");
  lead_and_complete(store_, "k", old_answer, milliseconds(100));
  for (int i = 10; i < 30; ++i) {
    lead_and_complete(store_, "o-" + std::to_string(i), response_of("x"), hours(1));
  }
  ASSERT_EQ(store_.begin("k", kFingerprint, nullptr).response, old_answer);
  clock_.advance(milliseconds(100));
  const auto result = store_.begin("k", kFingerprint, nullptr);
  EXPECT_EQ(result.outcome, BeginOutcome::lead);
  EXPECT_EQ(result.response, nullptr);
  EXPECT_EQ(store_.stats(), (Stats{.entries = 21,
                                   .in_flight = 1,
                                   .bytes = 20 * completed_charge("o-10", *response_of("x")) +
                                            in_flight_charge("k"),
                                   .leads = 22,
                                   .replays = 1,
                                   .expirations = 1}));
}

// Making room removes the least recently used answer; one already expired counts as such.
TEST_F(IdempotencyStoreTest, ExpiredAnswerMadeRoomForCountsAsExpiration) {
  const std::uint64_t each = completed_charge("k-00", *response_of("x"));
  constexpr std::uint64_t kAnswers = 20;
  IdempotencyStore store(one_shard(kAnswers * each + in_flight_charge("k-00")), clock_);
  lead_and_complete(store, "k-00", response_of("x"), milliseconds(100));  // the LRU tail
  for (std::uint64_t i = 1; i < kAnswers; ++i) {
    lead_and_complete(store, "k-" + std::to_string(10 + i), response_of("x"), hours(1));
  }
  clock_.advance(milliseconds(100));
  lead_and_complete(store, "k-99", response_of("x"), hours(1));
  EXPECT_EQ(
      store.stats(),
      (Stats{
          .entries = kAnswers, .bytes = kAnswers * each, .leads = kAnswers + 1, .expirations = 1}));
}

// Each call examines the next kIdempotencySweepPerCall answers round the LRU list, so within
// ceil(answers / kIdempotencySweepPerCall) calls every expired one is gone, wherever it stands
// and whatever valid answers stand around it.
TEST_F(IdempotencyStoreTest, SweepRemovesExpiredAnswersNobodyAsksFor) {
  struct Kept {
    const char* key;
    milliseconds retain_for;
  };
  const std::vector<Kept> kept = {{"k1", hours(1)},          {"k2", milliseconds(100)},
                                  {"k3", milliseconds(100)}, {"k4", hours(1)},
                                  {"k5", milliseconds(100)}, {"k6", milliseconds(100)}};
  for (const Kept& k : kept) lead_and_complete(store_, k.key, response_of("x"), k.retain_for);
  clock_.advance(milliseconds(100));
  ASSERT_EQ(store_.stats().expirations, 0u);

  // Calls on other keys that leave no answer behind: lead, complete without retention, ...
  const std::size_t calls = (kept.size() + kIdempotencySweepPerCall - 1) / kIdempotencySweepPerCall;
  for (std::size_t call = 0; call < calls; ++call) {
    const std::string other = "other-" + std::to_string(call / 2);
    if (call % 2 == 0) {
      ASSERT_EQ(store_.begin(other, kFingerprint, nullptr).outcome, BeginOutcome::lead);
    } else {
      ASSERT_TRUE(store_.complete(other, response_of("x"), milliseconds(0)));
    }
    if (call == 0) {
      EXPECT_GT(store_.stats().expirations, 0u);
    }
  }
  EXPECT_EQ(store_.stats(), (Stats{.entries = 3,  // k1, k4 and other-1 in flight
                                   .in_flight = 1,
                                   .bytes = 2 * completed_charge("k1", *response_of("x")) +
                                            in_flight_charge("other-1"),
                                   .leads = 6 + 2,
                                   .expirations = 4}));
  EXPECT_EQ(store_.begin("k1", kFingerprint, nullptr).outcome, BeginOutcome::replay);
  EXPECT_EQ(store_.begin("k4", kFingerprint, nullptr).outcome, BeginOutcome::replay);
}

// A waiter runs after the shard lock is released: calling the store from it must neither
// deadlock nor see the entry half-completed.
TEST_F(IdempotencyStoreTest, WaiterMayCallBackIntoTheStore) {
  for (const auto retain_for : {milliseconds(1000), milliseconds(0)}) {
    SCOPED_TRACE(testing::Message() << "retain_for " << retain_for.count() << " ms");
    ManualClock clock;
    IdempotencyStore store(one_shard(1 << 20), clock);
    const Response answer = response_of("x");
    ASSERT_EQ(store.begin("k", kFingerprint, nullptr).outcome, BeginOutcome::lead);
    std::vector<BeginResult> seen;
    std::uint64_t entries_seen = 99;
    const auto result = store.begin("k", kFingerprint, [&](Response r) {
      EXPECT_EQ(r, answer);
      seen.push_back(store.begin("k", kFingerprint, nullptr));
      entries_seen = store.stats().entries;
    });
    ASSERT_EQ(result.outcome, BeginOutcome::joined);
    EXPECT_TRUE(store.complete("k", answer, retain_for));
    ASSERT_EQ(seen.size(), 1u);
    if (retain_for.count() > 0) {
      EXPECT_EQ(seen[0].outcome, BeginOutcome::replay);
      EXPECT_EQ(seen[0].response, answer);
    } else {
      EXPECT_EQ(seen[0].outcome, BeginOutcome::lead);  // the waiter's thread leads a new round
      EXPECT_FALSE(seen[0].untracked);
    }
    EXPECT_EQ(entries_seen, 1u);
  }
}

TEST_F(IdempotencyStoreTest, RetainForeverDoesNotOverflowTheClock) {
  lead_and_complete(store_, "k", response_of("x"), std::chrono::nanoseconds::max());
  clock_.advance(hours(24 * 365 * 100));
  EXPECT_EQ(store_.begin("k", kFingerprint, nullptr).outcome, BeginOutcome::replay);
}

TEST_F(IdempotencyStoreTest, ZeroShardsMeansOne) {
  config::IdempotencyStoreConfig config;
  config.shards = 0;
  IdempotencyStore store(config, clock_);
  lead_and_complete(store, "k", response_of("x"), hours(1));
  EXPECT_EQ(store.begin("k", kFingerprint, nullptr).outcome, BeginOutcome::replay);
}

thread_local int this_test_thread = -1;

// Threads lead, join, replay and mismatch on keys they share, over several shards with a
// budget small enough to evict, each holding a few leads open at a time so that the others
// join them. Afterwards every joiner was called exactly once, by the leader's thread, with
// the leader's answer, and the books balance.
TEST_F(IdempotencyStoreTest, ConcurrentUseWakesEveryJoinerOnceAndKeepsTheBooks) {
  constexpr int kThreads = 4;
  constexpr int kRounds = 3000;
  constexpr int kKeys = 16;
  constexpr std::size_t kOpenLeads = 3;                                 // per thread
  auto key_of = [](int k) { return "key-" + std::to_string(10 + k); };  // one length
  auto fingerprint_of = [](int k, bool odd) { return 100u + 2u * k + (odd ? 1u : 0u); };
  auto answer_of = [](const std::string& key, std::uint64_t fingerprint, int thread) {
    auto response = std::make_shared<StoredResponse>();
    response->headers = {{"x-fingerprint", std::to_string(fingerprint)},
                         {"x-thread", std::to_string(thread)}};
    response->body = key;
    return Response(std::move(response));
  };
  const std::uint64_t each = completed_charge(key_of(0), *answer_of(key_of(0), 100, 0));

  config::IdempotencyStoreConfig config;
  config.shards = 4;
  config.max_bytes = 4 * 3 * each;
  IdempotencyStore store(config, clock_);  // the clock stands still while threads run

  // What the threads saw, and what went wrong.
  std::atomic<std::uint64_t> leads{0}, untracked{0}, joins{0}, replays{0}, mismatches{0};
  std::atomic<int> failed_completes{0}, wrong_replays{0}, wrong_answers{0};
  std::vector<std::atomic<int>> calls(kThreads * kRounds);
  std::vector<std::atomic<bool>> joined(kThreads * kRounds);

  std::latch start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      this_test_thread = t;
      start.arrive_and_wait();
      std::deque<std::pair<std::string, std::uint64_t>> open;
      auto complete_oldest = [&](int round) {
        const auto [key, fingerprint] = open.front();
        open.pop_front();
        const auto retain_for =
            round % 4 == 0 ? std::chrono::nanoseconds(hours(1)) : std::chrono::nanoseconds(0);
        if (!store.complete(key, answer_of(key, fingerprint, t), retain_for)) ++failed_completes;
      };
      for (int i = 0; i < kRounds; ++i) {
        // Three rounds in a row on one key: a thread joins its own open leads even when the
        // threads happen not to overlap; the threads start on different keys and meet.
        const int k = (i / 3 + t * 5) % kKeys;
        const std::string key = key_of(k);
        const std::uint64_t fingerprint = fingerprint_of(k, i % 11 == 0);
        const std::size_t id = static_cast<std::size_t>(t * kRounds + i);
        const auto result =
            store.begin(key, fingerprint, [&, id, key, fingerprint](Response response) {
              ++calls[id];
              if (response == nullptr || response->body != key ||
                  response->headers[0].second != std::to_string(fingerprint) ||
                  response->headers[1].second != std::to_string(this_test_thread)) {
                ++wrong_answers;
              }
            });
        switch (result.outcome) {
          case BeginOutcome::lead:
            ++leads;
            if (result.untracked) {
              ++untracked;
            } else {
              open.emplace_back(key, fingerprint);
            }
            break;
          case BeginOutcome::joined:
            ++joins;
            joined[id] = true;
            break;
          case BeginOutcome::replay:
            ++replays;
            if (result.response == nullptr || result.response->body != key ||
                result.response->headers[0].second != std::to_string(fingerprint)) {
              ++wrong_replays;
            }
            break;
          case BeginOutcome::mismatch:
            ++mismatches;
            break;
        }
        if (open.size() > kOpenLeads) complete_oldest(i);
      }
      while (!open.empty()) complete_oldest(0);
    });
  }
  for (auto& thread : threads) thread.join();

  int joiners_not_called_once = 0;
  int others_called = 0;
  for (std::size_t id = 0; id < calls.size(); ++id) {
    if (joined[id]) {
      joiners_not_called_once += calls[id] != 1;
    } else {
      others_called += calls[id] != 0;
    }
  }
  EXPECT_EQ(joiners_not_called_once, 0);
  EXPECT_EQ(others_called, 0);
  EXPECT_EQ(wrong_answers, 0);
  EXPECT_EQ(wrong_replays, 0);
  EXPECT_EQ(failed_completes, 0);  // a tracked lead is always there to complete

  const auto stats = store.stats();
  EXPECT_EQ(leads + joins + replays + mismatches, static_cast<std::uint64_t>(kThreads * kRounds));
  EXPECT_EQ(stats, (Stats{.entries = stats.entries,
                          .in_flight = 0,
                          .bytes = stats.entries * each,  // every answer has the same size
                          .leads = leads,
                          .joins = joins,
                          .replays = replays,
                          .mismatches = mismatches,
                          .evictions = stats.evictions,
                          .expirations = 0,
                          .overflows = untracked,
                          .too_large = 0}));
  EXPECT_LE(stats.bytes, config.max_bytes);
  EXPECT_GT(stats.joins, 0u);
  EXPECT_GT(stats.replays, 0u);
  EXPECT_GT(stats.mismatches, 0u);
  EXPECT_GT(stats.evictions, 0u);
}

}  // namespace
}  // namespace fusebox::replay
