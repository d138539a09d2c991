# Use ccache for every compile when it is installed (CI and repeated local builds).
find_program(FUSEBOX_CCACHE ccache)
if(FUSEBOX_CCACHE AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
  set(CMAKE_CXX_COMPILER_LAUNCHER ${FUSEBOX_CCACHE})
endif()
