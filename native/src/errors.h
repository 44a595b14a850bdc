// Errors inside the native library travel as tasp::Error (a code from tasp.h plus a message) and
// are turned into a return code at the C API boundary (api.cpp); JNI turns them into Java
// exceptions (jni_tasp.cpp). Nothing throws across the C boundary.
#pragma once

#include <stdexcept>
#include <string>

#include "tasp.h"

namespace tasp {

class Error : public std::runtime_error {
 public:
  Error(int code, const std::string& message) : std::runtime_error(message), code_(code) {}
  int code() const { return code_; }

 private:
  int code_;
};

[[noreturn]] inline void fail(int code, const std::string& message) { throw Error(code, message); }



}  // namespace tasp
