# fusebox_project_options: warnings as errors and sanitizers, for the project's own targets only.
add_library(fusebox_project_options INTERFACE)
target_compile_options(fusebox_project_options INTERFACE -Wall -Wextra -Wpedantic -Werror
  -Wno-missing-field-initializers
  # GCC 12 reports yaml-cpp's inlined header code as dangling (a known false positive).
  $<$<CXX_COMPILER_ID:GNU>:-Wno-dangling-pointer>)
target_compile_definitions(fusebox_project_options INTERFACE
  BOOST_ASIO_NO_DEPRECATED)
if(FUSEBOX_SANITIZE)
  target_compile_options(fusebox_project_options INTERFACE
    -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  target_link_options(fusebox_project_options INTERFACE -fsanitize=address,undefined)
endif()
