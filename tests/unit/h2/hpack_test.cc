#include "fusebox/h2/hpack.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <utility>
#include <vector>

namespace fusebox::h2 {
namespace {

using Fields = std::vector<std::pair<std::string, std::string>>;

// "8286 8441" -> the bytes; spaces are ignored, as in RFC 7541 appendix C.
std::string from_hex(std::string_view hex) {
  std::string out;
  int high = -1;
  for (char c : hex) {
    if (c == ' ' || c == '\n') continue;
    const int nibble = c >= 'a' ? c - 'a' + 10 : c - '0';
    if (high < 0) {
      high = nibble;
    } else {
      out.push_back(static_cast<char>((high << 4) | nibble));
      high = -1;
    }
  }
  EXPECT_EQ(high, -1) << "odd number of hex digits in " << hex;
  return out;
}

// "00011111" -> the bytes; a way to write Huffman strings bit by bit.
std::string from_bits(std::string_view bits) {
  EXPECT_EQ(bits.size() % 8, 0u) << bits;
  std::string out(bits.size() / 8, '\0');
  for (std::size_t i = 0; i < bits.size(); ++i) {
    if (bits[i] == '1') out[i / 8] = static_cast<char>(out[i / 8] | (0x80 >> (i % 8)));
  }
  return out;
}

Fields pairs(const HeaderList& list) {
  Fields out;
  for (const auto& field : list) {
    out.emplace_back(std::string(field.name), std::string(field.value));
  }
  return out;
}

HeaderList list_of(const Fields& fields) {
  HeaderList out;
  for (const auto& [name, value] : fields) {
    out.push_back({memory::PooledString(name), memory::PooledString(value)});
  }
  return out;
}

// The dynamic table, newest entry first.
Fields dynamic_entries(const HpackTable& table) {
  Fields out;
  for (std::size_t i = 0; i < table.dynamic_count(); ++i) {
    const HeaderField* entry = table.at(62 + i);
    out.emplace_back(std::string(entry->name), std::string(entry->value));
  }
  return out;
}

std::string encode_integer(std::uint64_t value, int prefix_bits, std::uint8_t flags = 0) {
  std::string out;
  hpack_encode_integer(value, prefix_bits, flags, out);
  return out;
}

// ---- RFC 7541 C.1: integers ----

TEST(HpackInteger, EncodesTheRfcExamples) {
  EXPECT_EQ(encode_integer(10, 5), from_hex("0a"));          // C.1.1
  EXPECT_EQ(encode_integer(1337, 5), from_hex("1f 9a 0a"));  // C.1.2
  EXPECT_EQ(encode_integer(42, 8), from_hex("2a"));          // C.1.3
  EXPECT_EQ(encode_integer(31, 5, 0x20), from_hex("3f 00")) << "the prefix's maximum continues";
  EXPECT_EQ(encode_integer(4096, 5, 0x20), from_hex("3f e1 1f"));
}

TEST(HpackInteger, DecodesTheRfcExamplesAsTableSizeUpdates) {
  // A size update carries a 5-bit prefix integer and shows what the decoder read in max_size().
  HpackDecoder decoder;
  HeaderList out;
  ASSERT_EQ(decoder.decode(from_hex("2a"), out), HpackDecoder::Result::ok);  // 0x20 | 10
  EXPECT_EQ(decoder.table().max_size(), 10u);
  ASSERT_EQ(decoder.decode(from_hex("3f 9a 0a"), out), HpackDecoder::Result::ok);
  EXPECT_EQ(decoder.table().max_size(), 1337u);
  ASSERT_EQ(decoder.decode(from_hex("3f e1 1f"), out), HpackDecoder::Result::ok);
  EXPECT_EQ(decoder.table().max_size(), 4096u);
  EXPECT_TRUE(out.empty());
}

struct Step {
  std::string block;
  Fields list;
  Fields table;
  std::size_t table_size;
};

// Decodes the steps with one decoder, checking the list and the dynamic table after each.
void decode_steps(HpackDecoder& decoder, const std::vector<Step>& steps) {
  for (std::size_t i = 0; i < steps.size(); ++i) {
    SCOPED_TRACE("block " + std::to_string(i + 1));
    HeaderList out;
    ASSERT_EQ(decoder.decode(steps[i].block, out), HpackDecoder::Result::ok) << decoder.error();
    EXPECT_EQ(pairs(out), steps[i].list);
    EXPECT_EQ(dynamic_entries(decoder.table()), steps[i].table);
    EXPECT_EQ(decoder.table().size(), steps[i].table_size);
  }
}

// ---- RFC 7541 C.2: one representation each, from an empty table ----

TEST(HpackDecoder, RfcC21LiteralWithIndexing) {
  HpackDecoder decoder;
  decode_steps(decoder, {{from_hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 "
                                   "6164 6572"),
                          {{"custom-key", "custom-header"}},
                          {{"custom-key", "custom-header"}},
                          55}});
}

TEST(HpackDecoder, RfcC22LiteralWithoutIndexing) {
  HpackDecoder decoder;
  decode_steps(
      decoder,
      {{from_hex("040c 2f73 616d 706c 652f 7061 7468"), {{":path", "/sample/path"}}, {}, 0}});
}

TEST(HpackDecoder, RfcC23LiteralNeverIndexed) {
  HpackDecoder decoder;
  decode_steps(
      decoder,
      {{from_hex("1008 7061 7373 776f 7264 0673 6563 7265 74"), {{"password", "secret"}}, {}, 0}});
}

TEST(HpackDecoder, RfcC24Indexed) {
  HpackDecoder decoder;
  decode_steps(decoder, {{from_hex("82"), {{":method", "GET"}}, {}, 0}});
}

// ---- RFC 7541 C.3 and C.4: three requests on one connection ----

const Fields kRequest1 = {
    {":method", "GET"}, {":scheme", "http"}, {":path", "/"}, {":authority", "www.example.com"}};
const Fields kRequest2 = {{":method", "GET"},
                          {":scheme", "http"},
                          {":path", "/"},
                          {":authority", "www.example.com"},
                          {"cache-control", "no-cache"}};
const Fields kRequest3 = {{":method", "GET"},
                          {":scheme", "https"},
                          {":path", "/index.html"},
                          {":authority", "www.example.com"},
                          {"custom-key", "custom-value"}};
const Fields kTableAfterRequest1 = {{":authority", "www.example.com"}};
const Fields kTableAfterRequest2 = {{"cache-control", "no-cache"},
                                    {":authority", "www.example.com"}};
const Fields kTableAfterRequest3 = {{"custom-key", "custom-value"},
                                    {"cache-control", "no-cache"},
                                    {":authority", "www.example.com"}};

const std::vector<Step> kRfcC3 = {
    {from_hex("8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d"), kRequest1, kTableAfterRequest1,
     57},
    {from_hex("8286 84be 5808 6e6f 2d63 6163 6865"), kRequest2, kTableAfterRequest2, 110},
    {from_hex("8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65"),
     kRequest3, kTableAfterRequest3, 164},
};

const std::vector<Step> kRfcC4 = {
    {from_hex("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff"), kRequest1, kTableAfterRequest1, 57},
    {from_hex("8286 84be 5886 a8eb 1064 9cbf"), kRequest2, kTableAfterRequest2, 110},
    {from_hex("8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf"), kRequest3,
     kTableAfterRequest3, 164},
};

TEST(HpackDecoder, RfcC3RequestsWithoutHuffman) {
  HpackDecoder decoder;
  decode_steps(decoder, kRfcC3);
}

TEST(HpackDecoder, RfcC4RequestsWithHuffman) {
  HpackDecoder decoder;
  decode_steps(decoder, kRfcC4);
}

TEST(HpackEncoder, ReproducesTheRfcC4Requests) {
  // The RFC's encoder indexes every new field and Huffman-codes every string, as ours does here.
  HpackEncoder encoder;
  const Fields* requests[] = {&kRequest1, &kRequest2, &kRequest3};
  for (std::size_t i = 0; i < 3; ++i) {
    std::string block;
    encoder.encode(list_of(*requests[i]), block);
    EXPECT_EQ(block, kRfcC4[i].block) << "request " << i + 1;
    EXPECT_EQ(dynamic_entries(encoder.table()), kRfcC4[i].table);
    EXPECT_EQ(encoder.table().size(), kRfcC4[i].table_size);
  }
}

// ---- RFC 7541 C.5 and C.6: three responses, a 256-byte table, evictions ----

const Fields kResponse1 = {{":status", "302"},
                           {"cache-control", "private"},
                           {"date", "Mon, 21 Oct 2013 20:13:21 GMT"},
                           {"location", "https://www.example.com"}};
const Fields kResponse2 = {{":status", "307"},
                           {"cache-control", "private"},
                           {"date", "Mon, 21 Oct 2013 20:13:21 GMT"},
                           {"location", "https://www.example.com"}};
const Fields kResponse3 = {
    {":status", "200"},
    {"cache-control", "private"},
    {"date", "Mon, 21 Oct 2013 20:13:22 GMT"},
    {"location", "https://www.example.com"},
    {"content-encoding", "gzip"},
    {"set-cookie", "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"}};
const Fields kTableAfterResponse1 = {{"location", "https://www.example.com"},
                                     {"date", "Mon, 21 Oct 2013 20:13:21 GMT"},
                                     {"cache-control", "private"},
                                     {":status", "302"}};
const Fields kTableAfterResponse2 = {{":status", "307"},
                                     {"location", "https://www.example.com"},
                                     {"date", "Mon, 21 Oct 2013 20:13:21 GMT"},
                                     {"cache-control", "private"}};
const Fields kTableAfterResponse3 = {
    {"set-cookie", "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"},
    {"content-encoding", "gzip"},
    {"date", "Mon, 21 Oct 2013 20:13:22 GMT"}};

const std::vector<Step> kRfcC5 = {
    {from_hex("4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 "
              "2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 "
              "6c65 2e63 6f6d"),
     kResponse1, kTableAfterResponse1, 222},
    {from_hex("4803 3330 37c1 c0bf"), kResponse2, kTableAfterResponse2, 222},
    {from_hex("88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d "
              "54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 "
              "5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e "
              "3d31"),
     kResponse3, kTableAfterResponse3, 215},
};

const std::vector<Step> kRfcC6 = {
    {from_hex("4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 "
              "2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3"),
     kResponse1, kTableAfterResponse1, 222},
    {from_hex("4883 640e ffc1 c0bf"), kResponse2, kTableAfterResponse2, 222},
    {from_hex("88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab "
              "77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f "
              "9587 3160 65c0 03ed 4ee5 b106 3d50 07"),
     kResponse3, kTableAfterResponse3, 215},
};

TEST(HpackDecoder, RfcC5ResponsesWithoutHuffman) {
  HpackDecoder decoder(256);
  decode_steps(decoder, kRfcC5);
}

TEST(HpackDecoder, RfcC6ResponsesWithHuffman) {
  HpackDecoder decoder(256);
  decode_steps(decoder, kRfcC6);
}

TEST(HpackEncoder, ReproducesTheRfcC6ResponsesUpToTheSensitiveCookie) {
  HpackEncoder encoder;
  encoder.set_peer_max_table_size(256);
  std::string block;
  encoder.encode(list_of(kResponse1), block);
  // Our table starts at 4096 (the protocol default), so it first says it now uses 256.
  EXPECT_EQ(block, from_hex("3f e1 01") + kRfcC6[0].block);
  EXPECT_EQ(dynamic_entries(encoder.table()), kTableAfterResponse1);
  block.clear();
  encoder.encode(list_of(kResponse2), block);
  // "307" takes 3 bytes in Huffman too: sent raw, as C.5.2 has it (the RFC's C.6 uses Huffman).
  EXPECT_EQ(block, kRfcC5[1].block);
  EXPECT_EQ(dynamic_entries(encoder.table()), kTableAfterResponse2);
  EXPECT_EQ(encoder.table().size(), 222u);
  // The RFC's encoder indexes set-cookie; ours never does, so the third block differs there.
  block.clear();
  encoder.encode(list_of(kResponse3), block);
  HpackDecoder decoder(256);
  HeaderList out;
  ASSERT_EQ(decoder.decode(from_hex("3f e1 01") + kRfcC6[0].block, out), HpackDecoder::Result::ok);
  ASSERT_EQ(decoder.decode(kRfcC6[1].block, out), HpackDecoder::Result::ok);
  out.clear();
  ASSERT_EQ(decoder.decode(block, out), HpackDecoder::Result::ok) << decoder.error();
  EXPECT_EQ(pairs(out), kResponse3);
  EXPECT_EQ(dynamic_entries(encoder.table()), (Fields{{"content-encoding", "gzip"},
                                                      {"date", "Mon, 21 Oct 2013 20:13:22 GMT"},
                                                      {":status", "307"},
                                                      {"location", "https://www.example.com"}}));
  EXPECT_EQ(dynamic_entries(decoder.table()), dynamic_entries(encoder.table()));
}

// ---- Huffman ----

TEST(Huffman, EncodesTheRfcExamples) {
  const std::pair<std::string, std::string> examples[] = {
      {"www.example.com", "f1e3 c2e5 f23a 6ba0 ab90 f4ff"},
      {"no-cache", "a8eb 1064 9cbf"},
      {"custom-key", "25a8 49e9 5ba9 7d7f"},
      {"custom-value", "25a8 49e9 5bb8 e8b4 bf"},
      {"302", "6402"},
      {"gzip", "9bd9 ab"},
  };
  for (const auto& [text, hex] : examples) {
    std::string encoded;
    huffman_encode(text, encoded);
    EXPECT_EQ(encoded, from_hex(hex)) << text;
    EXPECT_EQ(huffman_encoded_size(text), encoded.size()) << text;
    std::string decoded = "kept:";
    ASSERT_TRUE(huffman_decode(encoded, decoded)) << text;
    EXPECT_EQ(decoded, "kept:" + text) << "appends";
  }
}

TEST(Huffman, RoundTripsEveryByteValue) {
  std::string all;
  for (int c = 0; c < 256; ++c) {
    const std::string one(3, static_cast<char>(c));
    std::string encoded, decoded;
    huffman_encode(one, encoded);
    ASSERT_EQ(encoded.size(), huffman_encoded_size(one)) << c;
    ASSERT_TRUE(huffman_decode(encoded, decoded)) << c;
    EXPECT_EQ(decoded, one) << c;
    all.push_back(static_cast<char>(c));
  }
  std::string encoded, decoded;
  huffman_encode(all, encoded);
  ASSERT_TRUE(huffman_decode(encoded, decoded));
  EXPECT_EQ(decoded, all);
  // Known lengths: '0' has a 5-bit code, 0x00 a 13-bit one, 0x0a (LF) a 30-bit one.
  EXPECT_EQ(huffman_encoded_size(std::string(8, '0')), 5u);
  EXPECT_EQ(huffman_encoded_size(std::string(8, '\0')), 13u);
  EXPECT_EQ(huffman_encoded_size(std::string(4, '\n')), 15u);
}

TEST(Huffman, RoundTripsRandomStrings) {
  std::mt19937 rng(20261201);
  for (int i = 0; i < 2000; ++i) {
    std::string text(rng() % 120, '\0');
    // Half the strings printable (the usual header text), half arbitrary bytes.
    for (char& c : text) c = static_cast<char>(i % 2 ? rng() % 256 : 32 + rng() % 95);
    std::string encoded, decoded;
    huffman_encode(text, encoded);
    ASSERT_TRUE(huffman_decode(encoded, decoded)) << i;
    ASSERT_EQ(decoded, text) << i;
  }
}

TEST(Huffman, RejectsEosInsideTheString) {
  // 'a' (00011), then EOS (30 ones), then 5 bits of padding.
  std::string out = "kept";
  EXPECT_FALSE(huffman_decode(from_bits("00011" + std::string(35, '1')), out));
  EXPECT_EQ(out, "kept") << "out is unchanged on failure";
  EXPECT_FALSE(huffman_decode(from_hex("ffff ffff"), out)) << "EOS and 2 bits of padding";
}

TEST(Huffman, RejectsPaddingLongerThanSevenBits) {
  std::string out;
  EXPECT_FALSE(huffman_decode(from_hex("ff"), out)) << "a whole byte of padding";
  EXPECT_FALSE(huffman_decode(from_bits("00011" + std::string(11, '1')), out));
  EXPECT_TRUE(huffman_decode(from_bits("00011"
                                       "111"),
                             out))
      << "the same with 3 bits";
  EXPECT_EQ(out, "a");
}

TEST(Huffman, RejectsPaddingWithAZeroBit) {
  std::string out;
  EXPECT_FALSE(huffman_decode(from_bits("00011"
                                        "110"),
                              out));
  EXPECT_FALSE(huffman_decode(from_bits("00011"
                                        "011"),
                              out));
  EXPECT_TRUE(out.empty());
}

TEST(Huffman, EmptyStringHasNoBytes) {
  std::string encoded, decoded;
  huffman_encode("", encoded);
  EXPECT_TRUE(encoded.empty());
  EXPECT_TRUE(huffman_decode("", decoded));
  EXPECT_TRUE(decoded.empty());
}

TEST(HpackString, UsesHuffmanOnlyWhenStrictlyShorter) {
  std::string out;
  hpack_encode_string("no-cache", out);
  EXPECT_EQ(out, from_hex("86 a8eb 1064 9cbf"));
  out.clear();
  hpack_encode_string("no-cache", out, /*allow_huffman=*/false);
  EXPECT_EQ(out, from_hex("08") + "no-cache");
  out.clear();
  // Bytes with long codes grow under Huffman: sent raw.
  hpack_encode_string("\x01\x02", out);
  EXPECT_EQ(out, from_hex("02 0102"));
}

// ---- HpackTable ----

TEST(HpackTable, StaticEntriesAreOneToSixtyOne) {
  HpackTable table;
  EXPECT_EQ(table.at(0), nullptr);
  ASSERT_NE(table.at(1), nullptr);
  EXPECT_EQ(table.at(1)->name, ":authority");
  EXPECT_EQ(table.at(2)->value, "GET");
  EXPECT_EQ(table.at(16)->value, "gzip, deflate");
  EXPECT_EQ(table.at(55)->name, "set-cookie");
  ASSERT_NE(table.at(61), nullptr);
  EXPECT_EQ(table.at(61)->name, "www-authenticate");
  EXPECT_EQ(table.at(62), nullptr) << "no dynamic entries yet";
}

TEST(HpackTable, DynamicEntriesStartAtSixtyTwoNewestFirst) {
  HpackTable table;
  table.add("a", "1");
  table.add("bb", "22");
  EXPECT_EQ(dynamic_entries(table), (Fields{{"bb", "22"}, {"a", "1"}}));
  EXPECT_EQ(table.at(62)->name, "bb");
  EXPECT_EQ(table.at(63)->name, "a");
  EXPECT_EQ(table.at(64), nullptr);
  EXPECT_EQ(table.size(), 34u + 36u);
}

TEST(HpackTable, EvictsTheOldestToFit) {
  HpackTable table(100);
  table.add("a", "1");  // 34
  table.add("b", "2");  // 34: 68
  table.add("c", "3");  // 34: 102 > 100, "a" goes
  EXPECT_EQ(dynamic_entries(table), (Fields{{"c", "3"}, {"b", "2"}}));
  EXPECT_EQ(table.size(), 68u);
  table.set_max_size(40);
  EXPECT_EQ(dynamic_entries(table), (Fields{{"c", "3"}}));
  EXPECT_EQ(table.size(), 34u);
  EXPECT_EQ(table.max_size(), 40u);
}

TEST(HpackTable, EntryLargerThanTheTableEmptiesIt) {
  HpackTable table(100);
  table.add("a", "1");
  table.add("name", std::string(65, 'v'));  // 4 + 65 + 32 = 101
  EXPECT_EQ(table.dynamic_count(), 0u);
  EXPECT_EQ(table.size(), 0u);
  table.add("name", std::string(64, 'v'));  // exactly 100 fits
  EXPECT_EQ(table.dynamic_count(), 1u);
  EXPECT_EQ(table.size(), 100u);
}

TEST(HpackTable, AddsANameTakenFromTheEntryItEvicts) {
  // RFC 7541 4.4: the name must be copied before the eviction frees it. Long enough to live on
  // the heap, so a sanitizer build sees a use after free.
  const std::string name = "x-custom-header-name-of-some-length";
  HpackTable table(80);
  table.add(name, "value-1");  // 34 + 7 + 32 = 73: the table has room for one
  const HeaderField* oldest = table.at(62);
  table.add(oldest->name, "value-2");
  EXPECT_EQ(dynamic_entries(table), (Fields{{name, "value-2"}}));
}

TEST(HpackTable, FindPrefersFullMatchesThenStaticEntries) {
  HpackTable table;
  EXPECT_EQ(table.find(":method", "GET").index, 2u);
  EXPECT_TRUE(table.find(":method", "GET").full);
  EXPECT_EQ(table.find(":method", "PUT").index, 2u);
  EXPECT_FALSE(table.find(":method", "PUT").full);
  EXPECT_EQ(table.find("x-unknown", "1").index, 0u);
  table.add(":method", "PUT");
  table.add(":method", "GET");
  EXPECT_EQ(table.find(":method", "GET").index, 2u) << "static preferred over a dynamic copy";
  EXPECT_EQ(table.find(":method", "PUT").index, 63u);
  EXPECT_TRUE(table.find(":method", "PUT").full);
  table.add("x-unknown", "1");
  EXPECT_EQ(table.find("x-unknown", "2").index, 62u);
  EXPECT_FALSE(table.find("x-unknown", "2").full);
}

// ---- Decoder errors ----

// `case_name` labels a failure; `hex` is the block.
void expect_compression_error(std::string_view case_name, std::string_view hex,
                              std::size_t max_table_size = 4096) {
  SCOPED_TRACE(case_name);
  HpackDecoder decoder(max_table_size);
  HeaderList out;
  EXPECT_EQ(decoder.decode(from_hex(hex), out), HpackDecoder::Result::compression_error);
  EXPECT_FALSE(decoder.error().empty());
}

TEST(HpackDecoder, RejectsIndexZero) { expect_compression_error("indexed field 0", "80"); }

TEST(HpackDecoder, RejectsIndexBeyondTheTable) {
  expect_compression_error("62 with an empty dynamic table", "be");
  expect_compression_error("a literal whose name index is 62", "7e 01 61");
  expect_compression_error("63 with one dynamic entry", "4001 6101 62 bf");
}

TEST(HpackDecoder, RejectsTruncatedIntegers) {
  expect_compression_error("prefix full, no continuation", "ff");
  expect_compression_error("continuation bit set on the last byte", "ff 80");
  expect_compression_error("string length cut", "40 7f");
}

TEST(HpackDecoder, RejectsIntegerOverflow) {
  expect_compression_error("index above 2^32", "ff ff ff ff ff 0f");
  expect_compression_error("zero continuation bytes past 32 bits (else a size update to 31)",
                           "3f 80 80 80 80 80 80 80 00");
  expect_compression_error("a string length that would wrap 2^64",
                           "40 7f ff ff ff ff ff ff ff ff ff 01");
}

TEST(HpackDecoder, RejectsStringLongerThanTheBlock) {
  expect_compression_error("name", "40 05 6162");
  expect_compression_error("value", "40 01 61 05 6162");
}

TEST(HpackDecoder, RejectsMalformedHuffmanInABlock) {
  expect_compression_error("a name of padding only", "40 81 ff 01 61");
}

TEST(HpackDecoder, RejectsSizeUpdateAboveTheAnnouncedLimit) {
  expect_compression_error("4097 above the default 4096", "3f e2 1f");
  expect_compression_error("1337 above an announced 1000", "3f 9a 0a", 1000);
  HpackDecoder decoder;
  HeaderList out;
  EXPECT_EQ(decoder.decode(from_hex("3f e1 1f"), out), HpackDecoder::Result::ok) << "4096 is";
}

TEST(HpackDecoder, RejectsSizeUpdateAfterAField) {
  expect_compression_error("an update after an indexed field", "82 20");
  HpackDecoder decoder;
  HeaderList out;
  EXPECT_EQ(decoder.decode(from_hex("20 3f e1 1f 82"), out), HpackDecoder::Result::ok)
      << "two updates at the start are allowed";
  EXPECT_EQ(pairs(out), (Fields{{":method", "GET"}}));
}

TEST(HpackDecoder, ClearsTheErrorOnSuccess) {
  HpackDecoder decoder;
  HeaderList out;
  ASSERT_EQ(decoder.decode(from_hex("80"), out), HpackDecoder::Result::compression_error);
  EXPECT_NE(decoder.error().find("index"), std::string::npos) << decoder.error();
  ASSERT_EQ(decoder.decode(from_hex("82"), out), HpackDecoder::Result::ok);
  EXPECT_TRUE(decoder.error().empty());
}

TEST(HpackDecoder, SizeUpdateEvicts) {
  HpackDecoder decoder;
  decode_steps(decoder, kRfcC3);
  HeaderList out;
  ASSERT_EQ(decoder.decode(from_hex("3f 1d 82"), out), HpackDecoder::Result::ok);  // 60
  EXPECT_EQ(dynamic_entries(decoder.table()), (Fields{{"custom-key", "custom-value"}}));
  EXPECT_EQ(decoder.table().max_size(), 60u);
  EXPECT_EQ(pairs(out), (Fields{{":method", "GET"}}));
}

// ---- too_large ----

TEST(HpackDecoder, TooLargeStillKeepsTheTableInStep) {
  HpackDecoder decoder;
  HeaderList out;
  // :method GET (42) fits in 50, :scheme http (43) does not; :authority is added all the same.
  EXPECT_EQ(decoder.decode(kRfcC3[0].block, out, 50), HpackDecoder::Result::too_large);
  EXPECT_EQ(pairs(out), (Fields{{":method", "GET"}}));
  EXPECT_FALSE(decoder.error().empty());
  EXPECT_EQ(dynamic_entries(decoder.table()), kTableAfterRequest1);
  out.clear();
  ASSERT_EQ(decoder.decode(kRfcC3[1].block, out), HpackDecoder::Result::ok) << "refers to 62";
  EXPECT_EQ(pairs(out), kRequest2);
}

TEST(HpackDecoder, CompressionErrorWinsOverTooLarge) {
  HpackDecoder decoder;
  HeaderList out;
  EXPECT_EQ(decoder.decode(kRfcC3[0].block + from_hex("80"), out, 50),
            HpackDecoder::Result::compression_error);
}

TEST(HpackDecoder, ListExactlyAtTheLimitIsOk) {
  HpackDecoder decoder;
  HeaderList out;
  EXPECT_EQ(decoder.decode(from_hex("8286"), out, 42 + 43), HpackDecoder::Result::ok);
  EXPECT_EQ(out.size(), 2u);
}

// ---- Encoder and decoder together ----

// Encodes `list` with `encoder`, decodes it with `decoder`, checks the round trip; the block.
std::string round_trip(HpackEncoder& encoder, HpackDecoder& decoder, const Fields& list) {
  std::string block;
  encoder.encode(list_of(list), block);
  HeaderList out;
  EXPECT_EQ(decoder.decode(block, out), HpackDecoder::Result::ok) << decoder.error();
  EXPECT_EQ(pairs(out), list);
  EXPECT_EQ(dynamic_entries(decoder.table()), dynamic_entries(encoder.table()));
  EXPECT_EQ(decoder.table().size(), encoder.table().size());
  return block;
}

const Fields kGrpcRequest = {{":method", "POST"},
                             {":scheme", "http"},
                             {":path", "/fusebox.v1.Inference/Predict"},
                             {":authority", "models.internal:8443"},
                             {"content-type", "application/grpc"},
                             {"te", "trailers"},
                             {"grpc-accept-encoding", "identity,deflate,gzip"},
                             {"user-agent", "grpc-c++/1.51.1 grpc-c/29.0.0 (linux; chttp2)"}};

TEST(HpackEncoder, RoundTripsSuccessiveListsAndIndexesRepeats) {
  HpackEncoder encoder;
  HpackDecoder decoder;
  const std::string first = round_trip(encoder, decoder, kGrpcRequest);
  const std::string second = round_trip(encoder, decoder, kGrpcRequest);
  EXPECT_EQ(second.size(), kGrpcRequest.size()) << "one indexed byte a field";
  EXPECT_LT(second.size() * 10, first.size());
  Fields changed = kGrpcRequest;
  changed[2].second = "/fusebox.v1.Inference/Health";
  changed.push_back({"x-request-id", "8f14e45f-ceea-467e-a7b4-1b2b7c8e3b1d"});
  round_trip(encoder, decoder, changed);
  round_trip(encoder, decoder, {{":status", "200"}, {"content-type", "application/grpc"}});
  round_trip(encoder, decoder, {{"grpc-status", "0"}, {"grpc-message", ""}});
  EXPECT_EQ(round_trip(encoder, decoder, {{"grpc-status", "0"}}).size(), 1u);
}

TEST(HpackEncoder, SensitiveFieldsAreNeverIndexed) {
  HpackEncoder encoder;
  HpackDecoder decoder;
  const Fields list = {{"authorization", "Bearer eyJhbGciOiJFUzI1NiJ9.e30.sig"},
                       {"cookie", "session=abc"},
                       {"proxy-authorization", "Basic dXNlcjpwYXNz"},
                       {"set-cookie", "id=1"},
                       {"x-tenant", "acme"}};
  round_trip(encoder, decoder, list);
  round_trip(encoder, decoder, list);
  EXPECT_EQ(dynamic_entries(encoder.table()), (Fields{{"x-tenant", "acme"}}));
  for (const auto& [name, value] : list) {
    if (name == "x-tenant") continue;
    std::string block;
    encoder.encode(name, value, block);
    ASSERT_FALSE(block.empty());
    EXPECT_EQ(block[0] & 0xf0, 0x10) << name << ": 0001xxxx, never indexed";
  }
  std::string block;
  encoder.encode("authorization", "Bearer x", block);
  EXPECT_EQ(block.substr(0, 2), from_hex("1f 08")) << "name by static index 23";
  block.clear();
  encoder.encode("cookie", "", block);
  EXPECT_EQ(block, from_hex("1f 11 00")) << "never indexed even when the static entry matches";
}

TEST(HpackEncoder, LongFieldsAreNotIndexed) {
  HpackEncoder encoder;
  HpackDecoder decoder;
  const std::string big(300, 'x');
  const std::string block = round_trip(encoder, decoder, {{"x-big", big}});
  EXPECT_EQ(block[0], 0x00) << "literal without indexing, new name";
  EXPECT_EQ(encoder.table().dynamic_count(), 0u);
  std::string exact;
  encoder.encode("x-fits", std::string(250, 'y'), exact);  // 6 + 250 = 256: indexed
  EXPECT_EQ(exact[0], 0x40);
  EXPECT_EQ(encoder.table().dynamic_count(), 1u);
}

// Per-message values would only churn the table: they go out as literals, the name indexed.
TEST(HpackEncoder, PerMessageValuesAreNotIndexed) {
  HpackEncoder encoder;
  HpackDecoder decoder;
  for (int i = 0; i < 3; ++i) {
    const Fields fields{{"content-type", "application/grpc"},
                            {"grpc-timeout", std::to_string(100 + i) + "m"},
                            {"x-request-id", "id-" + std::to_string(i)},
                            {"traceparent", "00-" + std::to_string(i)}};
    round_trip(encoder, decoder, fields);
  }
  // Only content-type was indexed (once); the per-message values never were.
  EXPECT_EQ(encoder.table().dynamic_count(), 1u);
  EXPECT_EQ(decoder.table().dynamic_count(), 1u);
  // Nor Huffman-coded: literal without indexing, new name, then the value as it is.
  const std::string id = "0af7651916cd43dd8448eb211c80319c";
  std::string block;
  HpackEncoder fresh;
  fresh.encode("x-request-id", id, block);
  ASSERT_GE(block.size(), 2u);
  EXPECT_EQ(block[0], 0x00);
  const std::size_t name_length = static_cast<unsigned char>(block[1]) & 0x7f;
  ASSERT_GT(block.size(), 2 + name_length);
  const auto value_length = static_cast<unsigned char>(block[2 + name_length]);
  EXPECT_EQ(value_length, id.size()) << "no Huffman bit, the raw length";
  EXPECT_EQ(block.substr(3 + name_length), id);
}

TEST(HpackEncoder, TableSizeZeroSendsAnUpdateAndStopsIndexing) {
  HpackEncoder encoder;
  HpackDecoder decoder;
  round_trip(encoder, decoder, kGrpcRequest);
  ASSERT_GT(encoder.table().dynamic_count(), 0u);
  encoder.set_peer_max_table_size(0);
  EXPECT_EQ(encoder.table().dynamic_count(), 0u);
  const std::string block = round_trip(encoder, decoder, kGrpcRequest);
  EXPECT_EQ(block[0], 0x20) << "size update to 0 first";
  EXPECT_EQ(decoder.table().max_size(), 0u);
  EXPECT_EQ(decoder.table().dynamic_count(), 0u);
  EXPECT_NE(round_trip(encoder, decoder, kGrpcRequest)[0], 0x20) << "only once";
  // Back to the default: the update says 4096 and indexing resumes.
  encoder.set_peer_max_table_size(65536);
  const std::string grown = round_trip(encoder, decoder, kGrpcRequest);
  EXPECT_EQ(grown.substr(0, 3), from_hex("3f e1 1f"));
  EXPECT_EQ(encoder.table().max_size(), 4096u) << "capped at 4096";
  EXPECT_EQ(round_trip(encoder, decoder, kGrpcRequest).size(), kGrpcRequest.size());
}

TEST(HpackEncoder, ShrinkingTo100Evicts) {
  HpackEncoder encoder;
  HpackDecoder decoder;
  round_trip(encoder, decoder, kGrpcRequest);
  round_trip(encoder, decoder, {{"x-a", "1"}, {"x-b", "2"}});
  encoder.set_peer_max_table_size(100);
  EXPECT_LE(encoder.table().size(), 100u);
  EXPECT_EQ(dynamic_entries(encoder.table()), (Fields{{"x-b", "2"}, {"x-a", "1"}}));
  const std::string block = round_trip(encoder, decoder, {{"x-a", "1"}, {"x-c", "3"}});
  EXPECT_EQ(block.substr(0, 3), from_hex("3f 45 bf")) << "update to 100, then x-a indexed at 63";
  EXPECT_EQ(dynamic_entries(decoder.table()), (Fields{{"x-c", "3"}, {"x-b", "2"}}));
}

TEST(HpackEncoder, ShrinkThenGrowSendsBothSizes) {
  HpackEncoder encoder;
  HpackDecoder decoder;
  round_trip(encoder, decoder, kGrpcRequest);
  encoder.set_peer_max_table_size(0);
  encoder.set_peer_max_table_size(4096);
  const std::string block = round_trip(encoder, decoder, kGrpcRequest);
  EXPECT_EQ(block.substr(0, 4), from_hex("20 3f e1 1f")) << "the minimum, then the final size";
  EXPECT_EQ(decoder.table().max_size(), 4096u);
}

TEST(HpackEncoder, SameSizeSendsNoUpdate) {
  HpackEncoder encoder;
  encoder.set_peer_max_table_size(4096);
  encoder.set_peer_max_table_size(1 << 20);
  std::string block;
  encoder.encode({{":method", "GET"}}, block);
  EXPECT_EQ(block, from_hex("82"));
}

}  // namespace
}  // namespace fusebox::h2
