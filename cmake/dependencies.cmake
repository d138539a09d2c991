# Every dependency comes from Debian 12 packages (scripts/install-deps.sh); nothing is downloaded.
find_package(Threads REQUIRED)
find_package(Boost 1.81 REQUIRED CONFIG)
find_package(nlohmann_json 3.11 REQUIRED)
find_package(fmt REQUIRED)
find_package(spdlog REQUIRED)
find_package(yaml-cpp REQUIRED)
find_package(prometheus-cpp REQUIRED COMPONENTS core)
find_package(OpenSSL REQUIRED)
# gRPC's CMake config (libgrpc++-dev) pulls in FindProtobuf and absl; protoc and grpc_cpp_plugin
# are found in proto/CMakeLists.txt.
find_package(Protobuf 3.21 REQUIRED)
find_package(gRPC CONFIG REQUIRED)
if(FUSEBOX_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
if(FUSEBOX_BUILD_BENCH)
  find_package(benchmark REQUIRED)
endif()
