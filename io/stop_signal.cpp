#include "io/stop_signal.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

namespace retort {
namespace {

constexpr int kSignals[] = {SIGINT, SIGTERM, SIGUSR1};
std::atomic<int> g_pending{0};
int g_depth = 0;  // nesting of StopSignals scopes; only touched outside handlers
struct sigaction g_previous[3];

void write_stderr(const char* text) {
  // Only async-signal-safe calls in here: write(2), no stdio.
  const ssize_t ignored = ::write(STDERR_FILENO, text, std::strlen(text));
  (void)ignored;
}

void on_signal(int signal_number) {
  int expected = 0;
  if (g_pending.compare_exchange_strong(expected, signal_number)) {
    write_stderr(signal_number == SIGINT ? "\nretort: SIGINT: finishing the step and saving a checkpoint "
                                           "(Ctrl-C again quits at once)\n"
                 : signal_number == SIGTERM ? "\nretort: SIGTERM: finishing the step and saving a checkpoint\n"
                                            : "\nretort: SIGUSR1: finishing the step and saving a checkpoint\n");
    return;
  }
  if (signal_number == SIGUSR1) return;  // Slurm may repeat its warning; only a person insists
  write_stderr("\nretort: stopping at once; the output directory resumes from its last checkpoint\n");
  ::_exit(128 + signal_number);
}

}  // namespace

StopSignals::StopSignals() {
  if (g_depth++ > 0) return;
  g_pending.store(0);
  struct sigaction action {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;  // file writes of the checkpoint are not cut short by EINTR
  for (int i = 0; i < 3; ++i) sigaction(kSignals[i], &action, &g_previous[i]);
}

StopSignals::~StopSignals() {
  if (--g_depth > 0) return;
  for (int i = 0; i < 3; ++i) sigaction(kSignals[i], &g_previous[i], nullptr);
}

int StopSignals::pending() { return g_pending.load(); }

std::string signal_name(int signal_number) {
  switch (signal_number) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
    case SIGUSR1: return "SIGUSR1";
    default: return "signal " + std::to_string(signal_number);
  }
}

}  // namespace retort
