// Running the real `xlstm` binary from tests: exit code and stdout+stderr together.
#pragma once
#include <stdlib.h>
#include <sys/wait.h>

#include <cstdio>
#include <string>

namespace xlstm::test {

struct CliResult {
  int code;         // exit status, or 128 + signal when the process was killed (a crash)
  std::string out;  // stdout and stderr, interleaved
};

// Runs `cmd` with /bin/sh (stderr redirected into stdout).
inline CliResult run_shell(const std::string& cmd) {
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  std::string out;
  if (!p) return {127, "popen failed"};
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), out};
}

#ifdef XLSTM_CLI
// `xlstm <args>` (the binary this build made).
inline CliResult run_cli(const std::string& args) {
  return run_shell(std::string(XLSTM_CLI) + " " + args);
}
#endif

}  // namespace xlstm::test
