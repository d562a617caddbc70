// Stopping without losing work: while a StopSignals scope is alive, SIGINT, SIGTERM and SIGUSR1
// (Slurm's pre-emption warning, `#SBATCH --signal=USR1@120`) do not end the process; they are
// recorded, and the long-running loop polls pending() at its next safe point, writes its
// checkpoint through the normal atomic path and returns exit_status_for_signal(). A second
// SIGINT or SIGTERM while one is pending ends the process at once (_exit), which leaves the
// output as resumable as SIGKILL would.
#pragma once

#include <string>

namespace retort {

class StopSignals {
 public:
  StopSignals();   // installs the handlers (scopes nest; the outermost one installs)
  ~StopSignals();  // restores the previous handlers
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  // The signal received since the outermost scope began (SIGINT, SIGTERM, SIGUSR1), or 0.
  static int pending();
};

// "SIGINT", "SIGTERM", "SIGUSR1", else "signal N".
std::string signal_name(int signal_number);

// 128 + N, the status a shell reports for a process the signal ended: 130 (SIGINT),
// 143 (SIGTERM), 138 (SIGUSR1).
inline int exit_status_for_signal(int signal_number) { return 128 + signal_number; }

}  // namespace retort
