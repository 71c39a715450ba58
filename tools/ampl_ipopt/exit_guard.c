/* A C exit hook for models/solver.py.  The AMPL Solver Library (under
 * PyNumero, route "cyipopt") ends the process with exit(1) when a second
 * derivative cannot be evaluated (e.g. pow''(0, 1.1): ASL's Hessian routine
 * has no error argument), printing only its own line.  While a solve is armed
 * this hook adds one "error:" line that names the solve, so that such a run is
 * never a silent exit 1.  Plain C: it runs after Python may have finalised. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char label[600];
static int armed = 0, installed = 0;

static void guard(void) {
  static const char head[] = "\nerror: the AMPL Solver Library stopped the process while Ipopt evaluated the functions of solve '";
  static const char tail[] = "' (its line above names the function and the point): a function is evaluated where it is "
                             "not defined, e.g. pow(0, y) with y < 2 in second derivatives; nothing of this run was written\n";
  if (!armed) return;
  if (write(2, head, sizeof head - 1) < 0) return;
  if (write(2, label, strlen(label)) < 0) return;
  if (write(2, tail, sizeof tail - 1) < 0) return;
}

void exit_guard_arm(const char *what) {
  strncpy(label, what ? what : "", sizeof label - 1);
  label[sizeof label - 1] = '\0';
  if (!installed) installed = atexit(guard) == 0;
  armed = 1;
}

void exit_guard_disarm(void) { armed = 0; }
