# fusebox_project_options: warnings as errors and sanitizers, for the project's own targets only.
add_library(fusebox_project_options INTERFACE)
target_compile_options(fusebox_project_options INTERFACE -Wall -Wextra -Wpedantic -Werror
  -Wno-missing-field-initializers)
target_compile_definitions(fusebox_project_options INTERFACE
  BOOST_ASIO_NO_DEPRECATED BOOST_BEAST_USE_STD_STRING_VIEW)
if(FUSEBOX_SANITIZE)
  target_compile_options(fusebox_project_options INTERFACE
    -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  target_link_options(fusebox_project_options INTERFACE -fsanitize=address,undefined)
endif()
