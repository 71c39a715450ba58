// An AMPL-protocol `ipopt` executable (NL file in, SOL file out) around an
// installed Ipopt library -- here the Ipopt 3.14 bundled in the pinned casadi
// wheel -- and Debian's AMPL Solver Library (libamplsolver).  It exists so
// that the test suite can drive the project's executable route
// (models/solver.py `_solve_exe`: Pyomo's NL writer, the subprocess, Pyomo's
// SOL reader) on machines where no `ipopt` executable can be installed (see
// docs/solver.md).  Written for this project (BSD-3-Clause); it follows the
// conventions of Ipopt's own AMPL driver (src/Apps/AmplSolver) so that Pyomo
// cannot tell the two apart:
//   * command line `ipopt STUB[.nl] -AMPL key=value ...`; options also from
//     the environment variable `ipopt_options` (read first; the command line
//     wins), every registered Ipopt option by its own name and type; an
//     options file `ipopt.opt` in the working folder as with Ipopt;
//   * `ipopt -v` prints the version; `ipopt --print-options[=latex]` prints
//     Ipopt's option documentation;
//   * maximisation: Ipopt minimises the negated objective (gradient and
//     Hessian weight negated alike);
//   * the SOL file: solve_result_num 0 optimal, 1 acceptable, 2 feasible
//     point (square problem), 200 locally infeasible, 300 diverging, 400-402
//     iteration/CPU/wall-time limit, 500 tiny step, 501 restoration failed,
//     502 other; the message "Ipopt <version>: <status text>"; constraint
//     duals -lambda for a minimisation and lambda for a maximisation
//     (lambda = Ipopt's multipliers of the problem it solved), i.e.
//     d(objective as written)/d(rhs) for a minimisation and its negative for
//     a maximisation (the AMPL convention: duals of the minimised form);
//   * `scaling_factor` suffixes on variables, constraints and the objective
//     are handed to Ipopt (used with nlp_scaling_method = user-scaling).
// When Ipopt stops before it has a solution to report (an option it rejects,
// a linear solver it cannot load) no SOL file is written, as with Ipopt's
// own driver; Pyomo then reports a failed solve.
#include "IpIpoptApplication.hpp"
#include "IpTNLP.hpp"
#include "IpoptConfig.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

extern "C" {
#include "asl_pfgh.h"
}

using namespace Ipopt;

namespace {

class AmplNlp : public TNLP {
public:
  AmplNlp(ASL_pfgh* asl) : asl_(asl) {
    ASL_pfgh* asl_local = asl_;
    (void)asl_local;
  }
  bool finalized = false;

  bool get_nlp_info(Index& n, Index& m, Index& nnz_jac_g, Index& nnz_h_lag, IndexStyleEnum& style) override {
    ASL_pfgh* asl = asl_;
    if (!hess_ready_) {
      // one objective (obj_no 0) weighted by OW, constraint multipliers supplied, upper triangle
      hesset(1, 0, n_obj > 0 ? 1 : 0, 0, nlc);
      sign_ = (n_obj > 0 && objtype[0] != 0) ? -1.0 : 1.0;
      nnz_h_ = (Index)sphsetup(-1, 1, 1, 1);
      hess_ready_ = true;
    }
    n = n_var;
    m = n_con;
    nnz_jac_g = nzc;
    nnz_h_lag = nnz_h_;
    style = FORTRAN_STYLE;
    return true;
  }

  bool get_bounds_info(Index n, Number* x_l, Number* x_u, Index m, Number* g_l, Number* g_u) override {
    ASL_pfgh* asl = asl_;
    for (Index i = 0; i < n; i++) {
      x_l[i] = LUv[2 * i];
      x_u[i] = LUv[2 * i + 1];
    }
    for (Index i = 0; i < m; i++) {
      g_l[i] = LUrhs[2 * i];
      g_u[i] = LUrhs[2 * i + 1];
    }
    return true;
  }

  bool get_starting_point(Index n, bool init_x, Number* x, bool init_z, Number* z_L, Number* z_U, Index m,
                          bool init_lambda, Number* lambda) override {
    ASL_pfgh* asl = asl_;
    if (init_x)
      for (Index i = 0; i < n; i++) {
        double lo = LUv[2 * i], hi = LUv[2 * i + 1];
        x[i] = (havex0 && havex0[i]) ? X0[i] : (0.0 < lo ? lo : (0.0 > hi ? hi : 0.0));
      }
    if (init_z)
      for (Index i = 0; i < n; i++) z_L[i] = z_U[i] = 1.0;
    if (init_lambda)
      for (Index i = 0; i < m; i++) lambda[i] = (havepi0 && havepi0[i]) ? -sign_ * pi0[i] : 0.0;
    return true;
  }

  bool get_scaling_parameters(Number& obj_scaling, bool& use_x, Index n, Number* x_s, bool& use_g, Index m,
                              Number* g_s) override {
    ASL_pfgh* asl = asl_;
    SufDesc* so = suf_get("scaling_factor", ASL_Sufkind_obj);
    obj_scaling = (so && so->u.r) ? so->u.r[0] : 1.0;
    SufDesc* sv = suf_get("scaling_factor", ASL_Sufkind_var);
    use_x = sv && sv->u.r;
    if (use_x)
      for (Index i = 0; i < n; i++) x_s[i] = sv->u.r[i] > 0 ? sv->u.r[i] : 1.0;
    SufDesc* sc = suf_get("scaling_factor", ASL_Sufkind_con);
    use_g = sc && sc->u.r;
    if (use_g)
      for (Index i = 0; i < m; i++) g_s[i] = sc->u.r[i] > 0 ? sc->u.r[i] : 1.0;
    return true;
  }

  bool eval_f(Index, const Number* x, bool new_x, Number& f) override {
    ASL_pfgh* asl = asl_;
    if (!known(new_x, x)) return false;
    if (n_obj == 0) {
      f = 0.0;
      return true;
    }
    fint ne = 0;
    double v = objval(0, const_cast<Number*>(x), &ne);
    f = sign_ * v;
    return ne == 0;
  }

  bool eval_grad_f(Index n, const Number* x, bool new_x, Number* g) override {
    ASL_pfgh* asl = asl_;
    if (!known(new_x, x)) return false;
    if (n_obj == 0) {
      for (Index i = 0; i < n; i++) g[i] = 0.0;
      return true;
    }
    fint ne = 0;
    objgrd(0, const_cast<Number*>(x), g, &ne);
    if (ne) return false;
    for (Index i = 0; i < n; i++) g[i] *= sign_;
    return true;
  }

  bool eval_g(Index, const Number* x, bool new_x, Index, Number* g) override {
    ASL_pfgh* asl = asl_;
    if (!known(new_x, x)) return false;
    fint ne = 0;
    conval(const_cast<Number*>(x), g, &ne);
    return ne == 0;
  }

  bool eval_jac_g(Index, const Number* x, bool new_x, Index, Index, Index* iRow, Index* jCol,
                  Number* values) override {
    ASL_pfgh* asl = asl_;
    if (values == nullptr) {
      for (Index i = 0; i < n_con; i++)
        for (cgrad* cg = Cgrad[i]; cg; cg = cg->next) {
          iRow[cg->goff] = i + 1;
          jCol[cg->goff] = cg->varno + 1;
        }
      return true;
    }
    if (!known(new_x, x)) return false;
    fint ne = 0;
    jacval(const_cast<Number*>(x), values, &ne);
    return ne == 0;
  }

  bool eval_h(Index n, const Number* x, bool new_x, Number obj_factor, Index m, const Number* lambda, bool,
              Index, Index* iRow, Index* jCol, Number* values) override {
    ASL_pfgh* asl = asl_;
    if (values == nullptr) {
      Index k = 0;
      for (Index i = 0; i < n; i++)
        for (Index j = sputinfo->hcolstarts[i]; j < sputinfo->hcolstarts[i + 1]; j++) {
          iRow[k] = i + 1;
          jCol[k] = sputinfo->hrownos[j] + 1;
          k++;
        }
      return true;
    }
    if (!known(new_x, x)) return false;
    // the Hessian needs the functions evaluated at this x first (ASL rule)
    fint ne = 0;
    if (n_obj > 0) objval(0, const_cast<Number*>(x), &ne);
    std::vector<double> r(m > 0 ? m : 1);
    conval(const_cast<Number*>(x), r.data(), &ne);
    if (ne) return false;
    double ow = sign_ * obj_factor;
    sphes(values, -1, n_obj > 0 ? &ow : nullptr, const_cast<Number*>(lambda));
    return true;
  }

  void finalize_solution(SolverReturn status, Index n, const Number* x, const Number*, const Number*, Index m,
                         const Number*, const Number* lambda, Number, const IpoptData*,
                         IpoptCalculatedQuantities*) override {
    ASL_pfgh* asl = asl_;
    std::vector<double> xs(x, x + n), ys(m > 0 ? m : 1);
    for (Index i = 0; i < m; i++) ys[i] = sign_ < 0 ? lambda[i] : -lambda[i];
    std::string text;
    switch (status) {
      case SUCCESS: text = "Optimal Solution Found"; solve_result_num = 0; break;
      case MAXITER_EXCEEDED: text = "Maximum Number of Iterations Exceeded."; solve_result_num = 400; break;
      case CPUTIME_EXCEEDED: text = "Maximum CPU Time Exceeded."; solve_result_num = 401; break;
      case WALLTIME_EXCEEDED: text = "Maximum Wallclock Time Exceeded."; solve_result_num = 402; break;
      case STOP_AT_TINY_STEP: text = "Search Direction becomes Too Small."; solve_result_num = 500; break;
      case STOP_AT_ACCEPTABLE_POINT: text = "Solved To Acceptable Level."; solve_result_num = 1; break;
      case FEASIBLE_POINT_FOUND: text = "Found feasible point for square problem."; solve_result_num = 2; break;
      case LOCAL_INFEASIBILITY:
        text = "Converged to a locally infeasible point. Problem may be infeasible.";
        solve_result_num = 200;
        break;
      case RESTORATION_FAILURE: text = "Restoration Phase Failed."; solve_result_num = 501; break;
      case DIVERGING_ITERATES:
        text = "Iterates diverging; problem might be unbounded.";
        solve_result_num = 300;
        break;
      default: text = "Unknown Error"; solve_result_num = 502; break;
    }
    std::string msg = " \nIpopt " IPOPT_VERSION ": " + text;
    std::vector<char> cmsg(msg.begin(), msg.end());
    cmsg.push_back('\0');
    write_sol(cmsg.data(), xs.data(), ys.data(), nullptr);
    printf("\nIpopt %s: %s\n", IPOPT_VERSION, text.c_str());
    finalized = true;
  }

private:
  bool known(bool new_x, const Number* x) {
    ASL_pfgh* asl = asl_;
    if (!new_x) return true;
    fint ne = 0;
    xknowne(const_cast<Number*>(x), &ne);
    return ne == 0;
  }
  ASL_pfgh* asl_;
  bool hess_ready_ = false;
  double sign_ = 1.0;
  Index nnz_h_ = 0;
};

std::string unquote(std::string v) {
  if (v.size() >= 2 && (v.front() == '"' || v.front() == '\'') && v.back() == v.front())
    return v.substr(1, v.size() - 2);
  return v;
}

// split the ipopt_options string: key=value tokens, a value may be quoted
std::vector<std::string> split_env(const char* s) {
  std::vector<std::string> out;
  std::string cur;
  char q = 0;
  for (const char* p = s; p && *p; ++p) {
    char c = *p;
    if (q) {
      cur += c;
      if (c == q) q = 0;
    } else if (c == '"' || c == '\'') {
      q = c;
      cur += c;
    } else if (c == ' ' || c == '\t' || c == '\n') {
      if (!cur.empty()) out.push_back(cur), cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

bool set_option(IpoptApplication& app, const std::string& token) {
  size_t eq = token.find('=');
  if (eq == std::string::npos || eq == 0) {
    fprintf(stderr, "ipopt: option %s: expected keyword=value\n", token.c_str());
    return false;
  }
  std::string key = token.substr(0, eq), val = unquote(token.substr(eq + 1));
  SmartPtr<const RegisteredOption> opt = app.RegOptions()->GetOption(key);
  if (!IsValid(opt)) {
    fprintf(stderr, "Unknown keyword \"%s\"\n", key.c_str());
    return false;
  }
  bool ok = false;
  char* end = nullptr;
  switch (opt->Type()) {
    case OT_Number: {
      double d = strtod(val.c_str(), &end);
      ok = end && *end == '\0' && !val.empty() && app.Options()->SetNumericValue(key, d);
      break;
    }
    case OT_Integer: {
      long l = strtol(val.c_str(), &end, 10);
      ok = end && *end == '\0' && !val.empty() && app.Options()->SetIntegerValue(key, (Index)l);
      break;
    }
    case OT_String: ok = app.Options()->SetStringValue(key, val); break;
    default: break;
  }
  if (!ok) fprintf(stderr, "Invalid value \"%s\" for option %s.\n", val.c_str(), key.c_str());
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  SmartPtr<IpoptApplication> app = IpoptApplicationFactory();
  app->RethrowNonIpoptException(false);
  if (argc == 2 && !std::strcmp(argv[1], "-v")) {
    printf("Ipopt %s (AMPL driver of the llm-pricing project), ASL(%ld)\n", IPOPT_VERSION, (long)ASLdate_ASL);
    return 0;
  }
  if (argc == 2 && !std::strncmp(argv[1], "--print-options", 15)) {
    const char* mode = argv[1][15] == '=' ? argv[1] + 16 : "text";
    app->Options()->SetStringValue("print_options_documentation", "yes");
    app->Options()->SetStringValue("print_advanced_options", "yes");
    app->Options()->SetStringValue("print_options_mode", mode);
    app->Initialize("");
    return 0;
  }
  if (argc < 2) {
    fprintf(stderr, "usage: %s STUB[.nl] -AMPL [keyword=value ...]\n", argv[0]);
    return 1;
  }
  if (app->Initialize("") != Solve_Succeeded) {
    fprintf(stderr, "ipopt: Ipopt could not be initialised\n");
    return 1;
  }
  ASL_pfgh* asl = (ASL_pfgh*)ASL_alloc(ASL_read_pfgh);
  std::string stub = argv[1];
  if (stub.size() > 3 && stub.compare(stub.size() - 3, 3, ".nl") == 0) stub.resize(stub.size() - 3);
  FILE* nl = jac0dim(const_cast<char*>(stub.c_str()), (fint)stub.size());
  if (!nl) {
    fprintf(stderr, "ipopt: cannot open %s.nl\n", stub.c_str());
    return 1;
  }
  amplflag = 1;  // write STUB.sol (the -AMPL convention)
  static SufDecl suftab[] = {
      {const_cast<char*>("scaling_factor"), nullptr, ASL_Sufkind_var | ASL_Sufkind_real, 0},
      {const_cast<char*>("scaling_factor"), nullptr, ASL_Sufkind_con | ASL_Sufkind_real, 0},
      {const_cast<char*>("scaling_factor"), nullptr, ASL_Sufkind_obj | ASL_Sufkind_real, 0},
  };
  suf_declare(suftab, 3);
  want_xpi0 = 1 | 2;
  X0 = (real*)M1alloc(n_var * sizeof(real));
  havex0 = (char*)M1alloc(n_var);
  pi0 = (real*)M1alloc((n_con > 0 ? n_con : 1) * sizeof(real));
  havepi0 = (char*)M1alloc(n_con > 0 ? n_con : 1);
  if (n_cc != 0) {
    fprintf(stderr, "ipopt: complementarity constraints are not supported\n");
    return 1;
  }
  int rc = pfgh_read(nl, ASL_return_read_err | ASL_findgroups);
  if (rc != ASL_readerr_none) {
    fprintf(stderr, "ipopt: cannot read %s.nl (ASL error %d)\n", stub.c_str(), rc);
    return 1;
  }
  bool ok = true;
  for (const std::string& t : split_env(getenv("ipopt_options"))) ok = set_option(*app, t) && ok;
  for (int i = 2; i < argc; i++) {
    if (!std::strcmp(argv[i], "-AMPL")) continue;
    ok = set_option(*app, argv[i]) && ok;
  }
  if (!ok) return 1;
  if (app->Initialize() != Solve_Succeeded) {  // reads ipopt.opt (or option_file_name), opens output_file
    fprintf(stderr, "ipopt: Ipopt rejected its options\n");
    return 1;
  }
  SmartPtr<AmplNlp> tnlp = new AmplNlp(asl);
  ApplicationReturnStatus st = app->OptimizeTNLP(GetRawPtr(tnlp));
  if (!tnlp->finalized) printf("\nIpopt %s: stopped without a solution (status %d)\n", IPOPT_VERSION, (int)st);
  return 0;
}
