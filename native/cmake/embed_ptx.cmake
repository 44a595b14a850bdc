# Lowers the PTX ISA version of nvcc's output and embeds the PTX as a C string.
#   cmake -DIN=kernels.ptx -DLOWERED=kernels.lowered.ptx -DOUT=kernels_ptx.cpp -DPTX_VERSION=7.8 -P embed_ptx.cmake
# Why lower it: a driver compiles PTX of its own ISA version or older, and nvcc stamps its own
# (newest) version even on code that uses nothing new. The build then assembles the lowered PTX
# with ptxas for each target (CMakeLists.txt), so code that does need a newer ISA fails the build
# here instead of failing on a user's machine.
file(READ "${IN}" ptx)
string(REGEX MATCH "\\.version [0-9]+\\.[0-9]+" stamped "${ptx}")
if(NOT stamped)
  message(FATAL_ERROR "embed_ptx: no .version line in ${IN}")
endif()
string(REPLACE "${stamped}" ".version ${PTX_VERSION}" ptx "${ptx}")
file(WRITE "${LOWERED}" "${ptx}")
string(FIND "${ptx}" ")tasp_ptx\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "embed_ptx: the PTX contains the raw-string delimiter")
endif()
file(WRITE "${OUT}" "// Generated from kernels.cu by cmake/embed_ptx.cmake (${stamped} lowered to .version ${PTX_VERSION}).\n"
                    "extern \"C\" const char tasp_kernels_ptx[] = R\"tasp_ptx(${ptx})tasp_ptx\";\n")
