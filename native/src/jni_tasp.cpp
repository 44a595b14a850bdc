// JNI entry points of io.github.taspdjl.jni.TaspLibrary. Each calls the C API (tasp.h) and turns a
// failure into a Java exception: IllegalArgumentException for bad input, TaspNativeException
// (with the code) for everything else. Handles cross as jlong; the Java NDManager owns results.
#include <jni.h>

#include <algorithm>
#include <string>
#include <vector>

#include "tasp.h"

namespace {

void throw_java(JNIEnv* env, int code, const char* context) {
  std::string message = std::string(context) + ": " + tasp_last_error();
  if (code == TASP_ERR_ARGUMENT) {
    jclass cls = env->FindClass("java/lang/IllegalArgumentException");
    if (cls != nullptr) env->ThrowNew(cls, message.c_str());
    return;
  }
  jclass cls = env->FindClass("io/github/taspdjl/jni/TaspNativeException");
  if (cls == nullptr) return;  // NoClassDefFoundError is pending
  jmethodID ctor = env->GetMethodID(cls, "<init>", "(ILjava/lang/String;)V");
  if (ctor == nullptr) return;
  jstring jmsg = env->NewStringUTF(message.c_str());
  jobject ex = env->NewObject(cls, ctor, static_cast<jint>(code), jmsg);
  if (ex != nullptr) env->Throw(static_cast<jthrowable>(ex));
}

void* h(jlong v) { return reinterpret_cast<void*>(static_cast<intptr_t>(v)); }
jlong j(void* p) { return static_cast<jlong>(reinterpret_cast<intptr_t>(p)); }

// Stats of a rank run (tasp.h, TASP_STATS_LENGTH): the executor writes at most that many for the
// program's step count (word 4), which cannot exceed the program's length.
size_t stats_length(const std::vector<int64_t>& program) {
  int64_t steps = program.size() > 4 ? program[4] : 0;
  steps = std::max<int64_t>(0, std::min<int64_t>(steps, static_cast<int64_t>(program.size())));
  return static_cast<size_t>(TASP_STATS_LENGTH(steps));
}

void copy_stats(JNIEnv* env, jdoubleArray stats, const std::vector<double>& st) {
  if (stats == nullptr) return;
  jsize n = std::min<jsize>(env->GetArrayLength(stats), static_cast<jsize>(st.size()));
  env->SetDoubleArrayRegion(stats, 0, n, st.data());
}

// {handles..., extras...} as a Java long[]; when the array cannot be made (an exception is
// pending), the new tensor handles are freed so that nothing leaks.
jlongArray handles_array(JNIEnv* env, std::initializer_list<void*> handles, std::initializer_list<jlong> extras = {}) {
  std::vector<jlong> values;
  for (void* p : handles) values.push_back(j(p));
  for (jlong x : extras) values.push_back(x);
  jlongArray a = env->NewLongArray(static_cast<jsize>(values.size()));
  if (a != nullptr) env->SetLongArrayRegion(a, 0, static_cast<jsize>(values.size()), values.data());
  if (a == nullptr || env->ExceptionCheck()) {
    for (void* p : handles) tasp_tensor_free(p);
    return nullptr;
  }
  return a;
}

void throw_illegal_argument(JNIEnv* env, const char* message) {
  jclass cls = env->FindClass("java/lang/IllegalArgumentException");
  if (cls != nullptr) env->ThrowNew(cls, message);
}

// Runs a rank program through `call(words, &out, &lse, stats, stats_len)`; returns {out, lse} or throws.
template <typename Call>
jlongArray run_program(JNIEnv* env, jlongArray program, jdoubleArray stats, const char* context, Call call) {
  if (program == nullptr) {
    throw_illegal_argument(env, "executor: null program");
    return nullptr;
  }
  jsize n = env->GetArrayLength(program);
  std::vector<int64_t> words(static_cast<size_t>(n));
  env->GetLongArrayRegion(program, 0, n, reinterpret_cast<jlong*>(words.data()));
  std::vector<double> st(stats_length(words), 0.0);
  void* out = nullptr;
  void* lse = nullptr;
  int rc = call(words, &out, &lse, st.data(), static_cast<int64_t>(st.size()));
  if (rc != TASP_OK) {
    throw_java(env, rc, context);
    return nullptr;
  }
  copy_stats(env, stats, st);
  if (env->ExceptionCheck()) {
    tasp_tensor_free(out);
    tasp_tensor_free(lse);
    return nullptr;
  }
  return handles_array(env, {out, lse});
}

}  // namespace

namespace {
// An all-to-all's Java arguments (piece handles, flat shapes, stats) around a C API call
// int call(int world, void** pieces, const int64_t* sizes, void** received, double* stats, int64_t stats_len);
// returns the received handles (0 where nothing came) or null with a Java exception pending.
// Shared by every transport's all-to-all entry.
template <typename Call>
jlongArray all_to_all_call(JNIEnv* env, jlongArray sends, jlongArray recv_sizes, jint ndim, jdoubleArray stats,
                           const char* what, Call call) {
  if (sends == nullptr || recv_sizes == nullptr || ndim < 1) {
    throw_illegal_argument(env, (std::string(what) + ": null pieces or shapes").c_str());
    return nullptr;
  }
  const jsize world = env->GetArrayLength(sends);
  if (env->GetArrayLength(recv_sizes) != world * ndim) {
    throw_illegal_argument(env, (std::string(what) + ": one shape of ndim sizes per rank is needed").c_str());
    return nullptr;
  }
  std::vector<jlong> s(static_cast<size_t>(world));
  env->GetLongArrayRegion(sends, 0, world, s.data());
  std::vector<int64_t> r(static_cast<size_t>(world) * static_cast<size_t>(ndim));
  env->GetLongArrayRegion(recv_sizes, 0, world * ndim, reinterpret_cast<jlong*>(r.data()));
  std::vector<void*> pieces(static_cast<size_t>(world));
  for (jsize i = 0; i < world; ++i) pieces[static_cast<size_t>(i)] = h(s[static_cast<size_t>(i)]);
  std::vector<void*> received(static_cast<size_t>(world), nullptr);
  std::vector<double> st(TASP_STATS_TOTALS, 0.0);
  int rc = call(static_cast<int>(world), pieces.data(), r.data(), received.data(), st.data(),
                static_cast<int64_t>(st.size()));
  if (rc != TASP_OK) {
    throw_java(env, rc, what);
    return nullptr;
  }
  copy_stats(env, stats, st);
  jlongArray out = env->ExceptionCheck() ? nullptr : env->NewLongArray(world);
  if (out == nullptr) {
    for (void* t : received) tasp_tensor_free(t);
    return nullptr;
  }
  std::vector<jlong> handles(static_cast<size_t>(world));
  for (jsize i = 0; i < world; ++i) handles[static_cast<size_t>(i)] = j(received[static_cast<size_t>(i)]);
  env->SetLongArrayRegion(out, 0, world, handles.data());
  return out;
}
}  // namespace

extern "C" {

JNIEXPORT void JNICALL Java_io_github_taspdjl_jni_TaspLibrary_init(JNIEnv* env, jclass, jstring libtorch_dir) {
  const char* dir = libtorch_dir ? env->GetStringUTFChars(libtorch_dir, nullptr) : nullptr;
  int rc = tasp_init(dir);
  if (dir) env->ReleaseStringUTFChars(libtorch_dir, dir);
  if (rc != TASP_OK) throw_java(env, rc, "tasp_init");
}

JNIEXPORT jstring JNICALL Java_io_github_taspdjl_jni_TaspLibrary_flavor(JNIEnv* env, jclass) {
  return env->NewStringUTF(tasp_flavor());
}

JNIEXPORT jstring JNICALL Java_io_github_taspdjl_jni_TaspLibrary_version(JNIEnv* env, jclass) {
  return env->NewStringUTF(tasp_version());
}

JNIEXPORT jlongArray JNICALL Java_io_github_taspdjl_jni_TaspLibrary_attentionForward(JNIEnv* env, jclass, jlong q,
                                                                                     jlong k, jlong v,
                                                                                     jboolean causal,
                                                                                     jboolean has_scale,
                                                                                     jdouble scale) {
  void* out = nullptr;
  void* lse = nullptr;
  int backend = 0;
  int rc = tasp_attention_forward(h(q), h(k), h(v), causal, has_scale, scale, &out, &lse, &backend);
  if (rc != TASP_OK) {
    throw_java(env, rc, "attention forward");
    return nullptr;
  }
  return handles_array(env, {out, lse}, {static_cast<jlong>(backend)});
}

JNIEXPORT jlongArray JNICALL Java_io_github_taspdjl_jni_TaspLibrary_attentionBackward(
    JNIEnv* env, jclass, jlong dout, jlong q, jlong k, jlong v, jlong out, jlong lse, jboolean causal,
    jboolean has_scale, jdouble scale) {
  void* dq = nullptr;
  void* dk = nullptr;
  void* dv = nullptr;
  int rc = tasp_attention_backward(h(dout), h(q), h(k), h(v), h(out), h(lse), causal, has_scale, scale, &dq, &dk, &dv);
  if (rc != TASP_OK) {
    throw_java(env, rc, "attention backward");
    return nullptr;
  }
  return handles_array(env, {dq, dk, dv});
}

JNIEXPORT jlong JNICALL Java_io_github_taspdjl_jni_TaspLibrary_attentionForwardRecorded(
    JNIEnv* env, jclass, jlong q, jlong k, jlong v, jboolean causal, jboolean has_scale, jdouble scale) {
  void* out = nullptr;
  int rc = tasp_attention_forward_recorded(h(q), h(k), h(v), causal, has_scale, scale, &out);
  if (rc != TASP_OK) {
    throw_java(env, rc, "recorded attention forward");
    return 0;
  }
  return j(out);
}

JNIEXPORT jboolean JNICALL Java_io_github_taspdjl_jni_TaspLibrary_setGradMode(JNIEnv* env, jclass, jboolean enabled) {
  int previous = 0;
  int rc = tasp_set_grad_mode(enabled, &previous);
  if (rc != TASP_OK) throw_java(env, rc, "grad mode");
  return previous != 0 ? JNI_TRUE : JNI_FALSE;
}

JNIEXPORT void JNICALL Java_io_github_taspdjl_jni_TaspLibrary_mergePartial(JNIEnv* env, jclass, jlong acc_out,
                                                                           jlong acc_lse, jlong block_out,
                                                                           jlong block_lse) {
  int rc = tasp_merge_partial(h(acc_out), h(acc_lse), h(block_out), h(block_lse));
  if (rc != TASP_OK) throw_java(env, rc, "merge");
}

JNIEXPORT jlong JNICALL Java_io_github_taspdjl_jni_TaspLibrary_cast(JNIEnv* env, jclass, jlong t, jint dtype) {
  void* out = nullptr;
  int rc = tasp_cast(h(t), dtype, &out);
  if (rc != TASP_OK) {
    throw_java(env, rc, "cast");
    return 0;
  }
  return j(out);
}

JNIEXPORT jint JNICALL Java_io_github_taspdjl_jni_TaspLibrary_dtype(JNIEnv* env, jclass, jlong t) {
  int dtype = -1;
  int rc = tasp_dtype(h(t), &dtype);
  if (rc != TASP_OK) throw_java(env, rc, "dtype");
  return dtype;
}

JNIEXPORT jlong JNICALL Java_io_github_taspdjl_jni_TaspLibrary_groupCreate(JNIEnv* env, jclass, jint world,
                                                                          jlong timeout_ms) {
  void* g = nullptr;
  int rc = tasp_group_create(world, timeout_ms, &g);
  if (rc != TASP_OK) throw_java(env, rc, "group create");
  return j(g);
}

JNIEXPORT void JNICALL Java_io_github_taspdjl_jni_TaspLibrary_groupSetLinkRate(JNIEnv* env, jclass, jlong g, jint src,
                                                                              jint dst, jdouble rate) {
  int rc = tasp_group_set_link_rate(h(g), src, dst, rate);
  if (rc != TASP_OK) throw_java(env, rc, "group link rate");
}

JNIEXPORT void JNICALL Java_io_github_taspdjl_jni_TaspLibrary_groupSetSilent(JNIEnv* env, jclass, jlong g, jint rank,
                                                                            jboolean silent) {
  int rc = tasp_group_set_silent(h(g), rank, silent);
  if (rc != TASP_OK) throw_java(env, rc, "group silent");
}

JNIEXPORT void JNICALL Java_io_github_taspdjl_jni_TaspLibrary_groupSetFault(JNIEnv* env, jclass, jlong g, jint rank,
                                                                           jlong step) {
  int rc = tasp_group_set_fault(h(g), rank, step);
  if (rc != TASP_OK) throw_java(env, rc, "group fault");
}

JNIEXPORT jstring JNICALL Java_io_github_taspdjl_jni_TaspLibrary_groupFailure(JNIEnv* env, jclass, jlong g) {
  int failed = 0;
  const char* message = nullptr;
  int rc = tasp_group_failure(h(g), &failed, &message);
  if (rc != TASP_OK) {
    throw_java(env, rc, "group failure");
    return nullptr;
  }
  return failed ? env->NewStringUTF(message) : nullptr;
}

JNIEXPORT jlongArray JNICALL Java_io_github_taspdjl_jni_TaspLibrary_liveObjects(JNIEnv* env, jclass) {
  int64_t groups = 0, comms = 0;
  int rc = tasp_live_objects(&groups, &comms);
  if (rc != TASP_OK) {
    throw_java(env, rc, "live objects");
    return nullptr;
  }
  jlong values[2] = {static_cast<jlong>(groups), static_cast<jlong>(comms)};
  jlongArray a = env->NewLongArray(2);
  if (a != nullptr) env->SetLongArrayRegion(a, 0, 2, values);
  return a;
}

JNIEXPORT jint JNICALL Java_io_github_taspdjl_jni_TaspLibrary_statsLength(JNIEnv*, jclass, jlong steps) {
  return static_cast<jint>(TASP_STATS_LENGTH(std::max<jlong>(0, std::min<jlong>(steps, 1 << 24))));
}

JNIEXPORT void JNICALL Java_io_github_taspdjl_jni_TaspLibrary_groupFail(JNIEnv* env, jclass, jlong g, jstring message) {
  const char* m = message ? env->GetStringUTFChars(message, nullptr) : nullptr;
  int rc = tasp_group_fail(h(g), m);
  if (m) env->ReleaseStringUTFChars(message, m);
  if (rc != TASP_OK) throw_java(env, rc, "group fail");
}

JNIEXPORT void JNICALL Java_io_github_taspdjl_jni_TaspLibrary_groupDestroy(JNIEnv* env, jclass, jlong g) {
  int rc = tasp_group_destroy(h(g));
  if (rc != TASP_OK) throw_java(env, rc, "group destroy");
}

JNIEXPORT jlongArray JNICALL Java_io_github_taspdjl_jni_TaspLibrary_rankForward(JNIEnv* env, jclass, jlong g, jint rank,
                                                                               jlongArray program, jlong q, jlong k,
                                                                               jlong v, jboolean has_scale,
                                                                               jdouble scale, jdoubleArray stats) {
  return run_program(env, program, stats, "rank forward",
                     [&](const std::vector<int64_t>& words, void** out, void** lse, double* st, int64_t st_len) {
                       return tasp_rank_forward(h(g), rank, words.data(), static_cast<int64_t>(words.size()), h(q),
                                                h(k), h(v), has_scale, scale, out, lse, st, st_len);
                     });
}

JNIEXPORT jlongArray JNICALL Java_io_github_taspdjl_jni_TaspLibrary_rankAllToAll(JNIEnv* env, jclass, jlong g, jint rank,
                                                                                jlongArray sends, jlongArray recv_sizes,
                                                                                jint ndim, jlong like,
                                                                                jdoubleArray stats) {
  return all_to_all_call(env, sends, recv_sizes, ndim, stats, "all-to-all",
                         [&](int world, void** pieces, const int64_t* sizes, void** received, double* st,
                             int64_t st_len) {
                           return tasp_rank_all_to_all(h(g), rank, world, pieces, sizes, ndim, h(like), received, st,
                                                       st_len);
                         });
}

namespace {
// A Java string (may be null) as a C string for the call's duration.
struct Utf {
  JNIEnv* env;
  jstring s;
  const char* c;
  Utf(JNIEnv* e, jstring str) : env(e), s(str), c(str ? e->GetStringUTFChars(str, nullptr) : nullptr) {}
  ~Utf() {
    if (c) env->ReleaseStringUTFChars(s, c);
  }
};
}  // namespace

JNIEXPORT jint JNICALL Java_io_github_taspdjl_jni_TaspLibrary_ncclVersion(JNIEnv* env, jclass, jstring path) {
  Utf p(env, path);
  int version = 0;
  int rc = tasp_nccl_version(p.c, &version);
  if (rc != TASP_OK) throw_java(env, rc, "nccl");
  return version;
}

JNIEXPORT jbyteArray JNICALL Java_io_github_taspdjl_jni_TaspLibrary_ncclUniqueId(JNIEnv* env, jclass, jstring path) {
  Utf p(env, path);
  char id[128];
  int rc = tasp_nccl_unique_id(p.c, id);
  if (rc != TASP_OK) {
    throw_java(env, rc, "nccl");
    return nullptr;
  }
  jbyteArray a = env->NewByteArray(128);
  if (a != nullptr) env->SetByteArrayRegion(a, 0, 128, reinterpret_cast<const jbyte*>(id));
  return a;
}

JNIEXPORT jlong JNICALL Java_io_github_taspdjl_jni_TaspLibrary_ncclCommCreate(JNIEnv* env, jclass, jstring path,
                                                                             jint world, jint rank, jbyteArray id,
                                                                             jint device, jlong timeout_ms) {
  Utf p(env, path);
  if (id == nullptr || env->GetArrayLength(id) != 128) {
    throw_illegal_argument(env, "nccl: the unique id must be 128 bytes");
    return 0;
  }
  char bytes[128];
  env->GetByteArrayRegion(id, 0, 128, reinterpret_cast<jbyte*>(bytes));
  void* comm = nullptr;
  int rc = tasp_nccl_comm_create(p.c, world, rank, bytes, device, timeout_ms, &comm);
  if (rc != TASP_OK) throw_java(env, rc, "nccl");
  return j(comm);
}

JNIEXPORT void JNICALL Java_io_github_taspdjl_jni_TaspLibrary_ncclCommDestroy(JNIEnv* env, jclass, jlong comm) {
  int rc = tasp_nccl_comm_destroy(h(comm));
  if (rc != TASP_OK) throw_java(env, rc, "nccl");
}

JNIEXPORT void JNICALL Java_io_github_taspdjl_jni_TaspLibrary_ncclCommAbort(JNIEnv* env, jclass, jlong comm) {
  int rc = tasp_nccl_comm_abort(h(comm));
  if (rc != TASP_OK) throw_java(env, rc, "nccl");
}

JNIEXPORT void JNICALL Java_io_github_taspdjl_jni_TaspLibrary_ncclReject(JNIEnv* env, jclass, jlong comm,
                                                                        jstring why) {
  Utf w(env, why);
  int rc = tasp_nccl_reject(h(comm), w.c);
  if (rc != TASP_OK) throw_java(env, rc, "nccl");
}

JNIEXPORT jlongArray JNICALL Java_io_github_taspdjl_jni_TaspLibrary_ncclAllToAll(JNIEnv* env, jclass, jlong comm,
                                                                                jlongArray sends, jlongArray recv_sizes,
                                                                                jint ndim, jlong like,
                                                                                jdoubleArray stats) {
  return all_to_all_call(env, sends, recv_sizes, ndim, stats, "nccl all-to-all",
                         [&](int world, void** pieces, const int64_t* sizes, void** received, double* st,
                             int64_t st_len) {
                           return tasp_nccl_all_to_all(h(comm), world, pieces, sizes, ndim, h(like), received, st,
                                                       st_len);
                         });
}

JNIEXPORT jlongArray JNICALL Java_io_github_taspdjl_jni_TaspLibrary_ncclRankForward(
    JNIEnv* env, jclass, jlong comm, jlongArray program, jlong q, jlong k, jlong v, jboolean has_scale, jdouble scale,
    jdoubleArray stats) {
  return run_program(env, program, stats, "nccl rank forward",
                     [&](const std::vector<int64_t>& words, void** out, void** lse, double* st, int64_t st_len) {
                       return tasp_nccl_rank_forward(h(comm), words.data(), static_cast<int64_t>(words.size()), h(q),
                                                     h(k), h(v), has_scale, scale, out, lse, st, st_len);
                     });
}

}  // extern "C"

namespace {
// The common part of the backward entries: copies the program and the return map, runs `call`
// (one of tasp_*rank_backward) and returns {dq, dk, dv}.
template <typename Call>
jlongArray run_backward_program(JNIEnv* env, jlongArray program, jlongArray return_map, jdoubleArray stats,
                                const char* what, Call call) {
  jsize n = env->GetArrayLength(program);
  std::vector<int64_t> words(static_cast<size_t>(n));
  env->GetLongArrayRegion(program, 0, n, reinterpret_cast<jlong*>(words.data()));
  jsize m = env->GetArrayLength(return_map);
  std::vector<int64_t> map(static_cast<size_t>(m));
  env->GetLongArrayRegion(return_map, 0, m, reinterpret_cast<jlong*>(map.data()));
  std::vector<double> st(stats_length(words) + TASP_STATS_PER_STEP, 0.0);  // the backward's extra step
  void* dq = nullptr;
  void* dk = nullptr;
  void* dv = nullptr;
  int rc = call(words, map, &dq, &dk, &dv, st.data(), static_cast<int64_t>(st.size()));
  if (rc != TASP_OK) {
    throw_java(env, rc, what);
    return nullptr;
  }
  copy_stats(env, stats, st);
  return handles_array(env, {dq, dk, dv});
}
}  // namespace

extern "C" {

JNIEXPORT void JNICALL Java_io_github_taspdjl_jni_TaspLibrary_allReduce(JNIEnv* env, jclass, jboolean nccl,
                                                                     jlong target, jlongArray tensors) {
  jsize n = env->GetArrayLength(tensors);
  std::vector<jlong> raw(static_cast<size_t>(n));
  env->GetLongArrayRegion(tensors, 0, n, raw.data());
  std::vector<void*> handles;
  for (jlong t : raw) handles.push_back(h(t));
  int rc = nccl ? tasp_nccl_all_reduce(h(target), handles.data(), static_cast<int64_t>(n))
                : tasp_tcp_all_reduce(h(target), handles.data(), static_cast<int64_t>(n));
  if (rc != TASP_OK) throw_java(env, rc, nccl ? "nccl all-reduce" : "tcp all-reduce");
}

JNIEXPORT jlongArray JNICALL Java_io_github_taspdjl_jni_TaspLibrary_rankBackward(
    JNIEnv* env, jclass, jlong g, jint rank, jlongArray program, jlongArray return_map, jlong dout, jlong q, jlong k,
    jlong v, jlong out, jlong lse, jboolean has_scale, jdouble scale, jdoubleArray stats) {
  return run_backward_program(
      env, program, return_map, stats, "rank backward",
      [&](const std::vector<int64_t>& w, const std::vector<int64_t>& map, void** dq, void** dk, void** dv, double* st,
          int64_t st_len) {
        return tasp_rank_backward(h(g), rank, w.data(), static_cast<int64_t>(w.size()), map.data(),
                                  static_cast<int64_t>(map.size()), h(dout), h(q), h(k), h(v), h(out), h(lse),
                                  has_scale, scale, dq, dk, dv, st, st_len);
      });
}

JNIEXPORT jlongArray JNICALL Java_io_github_taspdjl_jni_TaspLibrary_tcpRankBackward(
    JNIEnv* env, jclass, jlong mesh, jlongArray program, jlongArray return_map, jlong dout, jlong q, jlong k, jlong v,
    jlong out, jlong lse, jboolean has_scale, jdouble scale, jdoubleArray stats) {
  return run_backward_program(
      env, program, return_map, stats, "tcp rank backward",
      [&](const std::vector<int64_t>& w, const std::vector<int64_t>& map, void** dq, void** dk, void** dv, double* st,
          int64_t st_len) {
        return tasp_tcp_rank_backward(h(mesh), w.data(), static_cast<int64_t>(w.size()), map.data(),
                                      static_cast<int64_t>(map.size()), h(dout), h(q), h(k), h(v), h(out), h(lse),
                                      has_scale, scale, dq, dk, dv, st, st_len);
      });
}

JNIEXPORT jlongArray JNICALL Java_io_github_taspdjl_jni_TaspLibrary_ncclRankBackward(
    JNIEnv* env, jclass, jlong comm, jlongArray program, jlongArray return_map, jlong dout, jlong q, jlong k, jlong v,
    jlong out, jlong lse, jboolean has_scale, jdouble scale, jdoubleArray stats) {
  return run_backward_program(
      env, program, return_map, stats, "nccl rank backward",
      [&](const std::vector<int64_t>& w, const std::vector<int64_t>& map, void** dq, void** dk, void** dv, double* st,
          int64_t st_len) {
        return tasp_nccl_rank_backward(h(comm), w.data(), static_cast<int64_t>(w.size()), map.data(),
                                       static_cast<int64_t>(map.size()), h(dout), h(q), h(k), h(v), h(out), h(lse),
                                       has_scale, scale, dq, dk, dv, st, st_len);
      });
}

JNIEXPORT jlongArray JNICALL Java_io_github_taspdjl_jni_TaspLibrary_tcpMeshCreate(JNIEnv* env, jclass, jint world,
                                                                                  jint rank, jstring bind_host,
                                                                                  jlong timeout_ms) {
  Utf host(env, bind_host);
  void* mesh = nullptr;
  int port = 0;
  int rc = tasp_tcp_mesh_create(world, rank, host.c, timeout_ms, &mesh, &port);
  if (rc != TASP_OK) {
    throw_java(env, rc, "tcp transport");
    return nullptr;
  }
  jlong values[2] = {j(mesh), static_cast<jlong>(port)};
  jlongArray a = env->NewLongArray(2);
  if (a != nullptr) env->SetLongArrayRegion(a, 0, 2, values);
  if (a == nullptr || env->ExceptionCheck()) {
    tasp_tcp_mesh_destroy(mesh);  // nobody could ever close it
    return nullptr;
  }
  return a;
}

JNIEXPORT void JNICALL Java_io_github_taspdjl_jni_TaspLibrary_tcpMeshConnect(JNIEnv* env, jclass, jlong mesh,
                                                                           jobjectArray hosts, jintArray ports,
                                                                           jlong token) {
  jsize n = env->GetArrayLength(hosts);
  if (env->GetArrayLength(ports) != n) {
    jclass cls = env->FindClass("java/lang/IllegalArgumentException");
    if (cls != nullptr) env->ThrowNew(cls, "tcp transport: one port per host");
    return;
  }
  std::vector<std::string> owned;
  for (jsize i = 0; i < n; ++i) {
    auto s = static_cast<jstring>(env->GetObjectArrayElement(hosts, i));
    Utf u(env, s);
    owned.emplace_back(u.c ? u.c : "");
    env->DeleteLocalRef(s);
  }
  std::vector<const char*> c_hosts;
  for (const std::string& s : owned) c_hosts.push_back(s.c_str());
  std::vector<jint> p(static_cast<size_t>(n));
  env->GetIntArrayRegion(ports, 0, n, p.data());
  std::vector<int> c_ports(p.begin(), p.end());
  int rc = tasp_tcp_mesh_connect(h(mesh), c_hosts.data(), c_ports.data(), static_cast<uint64_t>(token));
  if (rc != TASP_OK) throw_java(env, rc, "tcp transport");
}

JNIEXPORT void JNICALL Java_io_github_taspdjl_jni_TaspLibrary_tcpMeshFail(JNIEnv* env, jclass, jlong mesh,
                                                                        jstring message) {
  Utf m(env, message);
  int rc = tasp_tcp_mesh_fail(h(mesh), m.c);
  if (rc != TASP_OK) throw_java(env, rc, "tcp transport");
}

JNIEXPORT void JNICALL Java_io_github_taspdjl_jni_TaspLibrary_tcpMeshDestroy(JNIEnv* env, jclass, jlong mesh) {
  int rc = tasp_tcp_mesh_destroy(h(mesh));
  if (rc != TASP_OK) throw_java(env, rc, "tcp transport");
}

JNIEXPORT jlongArray JNICALL Java_io_github_taspdjl_jni_TaspLibrary_tcpAllToAll(JNIEnv* env, jclass, jlong mesh,
                                                                               jlongArray sends, jlongArray recv_sizes,
                                                                               jint ndim, jlong like,
                                                                               jdoubleArray stats) {
  return all_to_all_call(env, sends, recv_sizes, ndim, stats, "tcp all-to-all",
                         [&](int world, void** pieces, const int64_t* sizes, void** received, double* st,
                             int64_t st_len) {
                           return tasp_tcp_all_to_all(h(mesh), world, pieces, sizes, ndim, h(like), received, st,
                                                      st_len);
                         });
}

JNIEXPORT jlongArray JNICALL Java_io_github_taspdjl_jni_TaspLibrary_tcpRankForward(
    JNIEnv* env, jclass, jlong mesh, jlongArray program, jlong q, jlong k, jlong v, jboolean has_scale, jdouble scale,
    jdoubleArray stats) {
  return run_program(env, program, stats, "tcp rank forward",
                     [&](const std::vector<int64_t>& words, void** out, void** lse, double* st, int64_t st_len) {
                       return tasp_tcp_rank_forward(h(mesh), words.data(), static_cast<int64_t>(words.size()), h(q),
                                                    h(k), h(v), has_scale, scale, out, lse, st, st_len);
                     });
}

}  // extern "C"
