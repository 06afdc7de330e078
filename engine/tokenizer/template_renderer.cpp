#include "engine/tokenizer/template_renderer.h"

#include <algorithm>
#include <cmath>

#include "engine/tokenizer/template_builtins.h"

namespace sluice::jinja {
namespace {

enum class Flow { normal, loop_break, loop_continue };

class Renderer {
 public:
  Renderer(const Dict& context, const RenderLimits& limits) : context_(context), limits_(limits) {
    scopes_.emplace_back();  // the template's own scope: top-level `set`s shadow the context
  }

  Result<std::string, Error> run(const std::vector<Node>& program) {
    std::string out;
    Flow flow = Flow::normal;
    if (!exec_all(program, out, flow)) return fail(std::move(error_));
    return out;
  }

 private:
  bool set_error(ErrorKind kind, std::string message, int line) {
    if (!failed_) {
      error_ = Error{kind, std::move(message), line};
      failed_ = true;
    }
    return false;
  }
  bool render_error(std::string message, int line) { return set_error(ErrorKind::render, std::move(message), line); }
  bool forward(Error e, int line) {
    if (e.line == 0) e.line = line;
    return set_error(e.kind, std::move(e.message), e.line);
  }
  bool undefined_error(const Value& v, int line) { return render_error("'" + v.undefined_name() + "' is undefined", line); }

  // ---- statements ----

  bool exec_all(const std::vector<Node>& nodes, std::string& out, Flow& flow) {
    for (const Node& n : nodes) {
      if (!exec(n, out, flow)) return false;
      if (flow != Flow::normal) return true;
    }
    return true;
  }

  bool append(std::string& out, std::string_view text, int line) {
    total_output_ += text.size();
    if (total_output_ > limits_.max_output_bytes) return render_error("the rendered template exceeds the output limit", line);
    out.append(text);
    return true;
  }

  bool exec(const Node& n, std::string& out, Flow& flow) {
    switch (n.kind) {
      case NodeKind::text:
        return append(out, n.text, n.line);
      case NodeKind::output: {
        Value v;
        return eval(*n.expr, v) && append(out, to_str(v), n.line);
      }
      case NodeKind::if_chain:
        for (const auto& [cond, body] : n.branches) {
          bool take = true;
          if (cond) {
            Value c;
            if (!eval(*cond, c)) return false;
            take = truthy(c);
          }
          if (take) return exec_all(body, out, flow);
        }
        return true;
      case NodeKind::for_loop:
        return exec_for(n, out);
      case NodeKind::set: {
        Value v;
        if (!eval(*n.expr, v)) return false;
        return assign(n, std::move(v));
      }
      case NodeKind::set_block: {
        std::string captured;
        Flow inner = Flow::normal;
        if (!exec_all(n.body, captured, inner)) return false;
        return assign(n, Value(std::move(captured)));
      }
      case NodeKind::loop_break:
      case NodeKind::loop_continue:
        if (loop_depth_ == 0) return set_error(ErrorKind::syntax, "break or continue outside a loop", n.line);
        flow = n.kind == NodeKind::loop_break ? Flow::loop_break : Flow::loop_continue;
        return true;
      case NodeKind::block:
        return exec_all(n.body, out, flow);
    }
    return true;
  }

  bool assign(const Node& n, Value v) {
    if (n.attribute.empty()) {
      scopes_.back().set(n.targets[0], std::move(v));
      return true;
    }
    const Value target = lookup(n.targets[0]);
    if (!target.is_namespace()) {
      return render_error("cannot assign attribute '" + n.attribute + "' on '" + n.targets[0] +
                              "', which is not a namespace()", n.line);
    }
    std::get<Namespace>(target.data).attrs->set(n.attribute, std::move(v));
    return true;
  }

  bool bind_targets(const Node& n, const Value& item) {
    Dict& scope = scopes_.back();
    if (n.targets.size() == 1) {
      scope.set(n.targets[0], item);
      return true;
    }
    List parts;
    if (!iterate(item, parts) || parts.size() != n.targets.size()) {
      return render_error("cannot unpack " + std::string(type_name(item)) + " into " +
                              std::to_string(n.targets.size()) + " loop variables", n.line);
    }
    for (std::size_t i = 0; i < parts.size(); ++i) scope.set(n.targets[i], parts[i]);
    return true;
  }

  bool exec_for(const Node& n, std::string& out) {
    Value seq;
    if (!eval(*n.expr, seq)) return false;
    List items;
    if (!iterate(seq, items)) return render_error("'" + std::string(type_name(seq)) + "' object is not iterable", n.line);
    if (n.condition) {
      List kept;
      for (const Value& item : items) {
        scopes_.emplace_back();
        Value keep;
        const bool ok = bind_targets(n, item) && eval(*n.condition, keep);
        scopes_.pop_back();
        if (!ok) return false;
        if (truthy(keep)) kept.push_back(item);
      }
      items = std::move(kept);
    }
    if (items.empty()) {
      scopes_.emplace_back();
      Flow flow = Flow::normal;
      const bool ok = exec_all(n.else_body, out, flow);
      scopes_.pop_back();
      return ok;
    }
    ++loop_depth_;
    const auto count = static_cast<std::int64_t>(items.size());
    for (std::int64_t i = 0; i < count; ++i) {
      if (++iterations_ > limits_.max_loop_iterations) {
        return render_error("the template exceeds the loop iteration limit", n.line);
      }
      scopes_.emplace_back();
      Dict loop;
      loop.items.reserve(11);
      loop.items.emplace_back("index", Value(i + 1));
      loop.items.emplace_back("index0", Value(i));
      loop.items.emplace_back("revindex", Value(count - i));
      loop.items.emplace_back("revindex0", Value(count - i - 1));
      loop.items.emplace_back("first", Value(i == 0));
      loop.items.emplace_back("last", Value(i == count - 1));
      loop.items.emplace_back("length", Value(count));
      loop.items.emplace_back("depth", Value(1));
      loop.items.emplace_back("depth0", Value(0));
      if (i > 0) loop.items.emplace_back("previtem", items[static_cast<std::size_t>(i - 1)]);
      if (i + 1 < count) loop.items.emplace_back("nextitem", items[static_cast<std::size_t>(i + 1)]);
      scopes_.back().set("loop", Value(std::move(loop)));
      Flow flow = Flow::normal;
      const bool ok = bind_targets(n, items[static_cast<std::size_t>(i)]) && exec_all(n.body, out, flow);
      scopes_.pop_back();
      if (!ok) return false;
      if (flow == Flow::loop_break) break;
    }
    --loop_depth_;
    return true;
  }

  // ---- expressions ----

  Value lookup(const std::string& name) const {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
      if (const Value* v = it->find(name)) return *v;
    }
    if (const Value* v = context_.find(name)) return *v;
    if (is_global_function(name)) return Value(Callable{name, nullptr});
    return Value::undefined(name);
  }

  bool eval_args(const Expr& e, std::size_t first, Args& args, Kwargs& kwargs) {
    for (std::size_t i = first; i < e.args.size(); ++i) {
      Value v;
      if (!eval(*e.args[i], v)) return false;
      args.push_back(std::move(v));
    }
    for (const auto& [k, x] : e.kwargs) {
      Value v;
      if (!eval(*x, v)) return false;
      kwargs.emplace_back(k, std::move(v));
    }
    return true;
  }

  bool eval(const Expr& e, Value& out) {
    switch (e.kind) {
      case ExprKind::literal:
        out = e.value;
        return true;
      case ExprKind::name:
        out = lookup(e.name);
        return true;
      case ExprKind::list: {
        List items;
        for (const auto& a : e.args) {
          Value v;
          if (!eval(*a, v)) return false;
          items.push_back(std::move(v));
        }
        out = e.tuple ? Value::tuple_of(std::move(items)) : Value(std::move(items));
        return true;
      }
      case ExprKind::dict: {
        Dict d;
        for (const auto& [k, x] : e.entries) {
          Value key;
          Value v;
          if (!eval(*k, key) || !eval(*x, v)) return false;
          if (!key.is_string()) return render_error("dict keys must be strings in chat templates", e.line);
          d.set(key.str(), std::move(v));
        }
        out = Value(std::move(d));
        return true;
      }
      case ExprKind::attribute: {
        Value obj;
        if (!eval(*e.args[0], obj)) return false;
        if (obj.is_undefined()) return undefined_error(obj, e.line);
        out = get_attribute(obj, e.name);
        return true;
      }
      case ExprKind::subscript: {
        Value obj;
        Value key;
        if (!eval(*e.args[0], obj) || !eval(*e.args[1], key)) return false;
        if (obj.is_undefined()) return undefined_error(obj, e.line);
        out = get_item(obj, key);
        return true;
      }
      case ExprKind::slice:
        return eval_slice(e, out);
      case ExprKind::call: {
        Value callee;
        if (!eval(*e.args[0], callee)) return false;
        if (callee.is_undefined()) return undefined_error(callee, e.line);
        if (!callee.is_callable()) return render_error("'" + std::string(type_name(callee)) + "' object is not callable", e.line);
        Args args;
        Kwargs kwargs;
        if (!eval_args(e, 1, args, kwargs)) return false;
        auto r = call(std::get<Callable>(callee.data), args, kwargs);
        if (!r) return forward(std::move(r.error()), e.line);
        out = std::move(*r);
        return true;
      }
      case ExprKind::filter: {
        Value input;
        Args args;
        Kwargs kwargs;
        if (!eval(*e.args[0], input) || !eval_args(e, 1, args, kwargs)) return false;
        auto r = apply_filter(e.name, input, args, kwargs);
        if (!r) return forward(std::move(r.error()), e.line);
        out = std::move(*r);
        return true;
      }
      case ExprKind::test: {
        Value input;
        Args args;
        Kwargs kwargs;
        if (!eval(*e.args[0], input) || !eval_args(e, 1, args, kwargs)) return false;
        auto r = apply_test(e.name, input, args);
        if (!r) return forward(std::move(r.error()), e.line);
        out = Value(*r != e.negated);
        return true;
      }
      case ExprKind::negate:
      case ExprKind::plus: {
        Value v;
        if (!eval(*e.args[0], v)) return false;
        if (v.is_undefined()) return undefined_error(v, e.line);
        if (!v.is_number()) return render_error("bad operand type for unary " + std::string(e.kind == ExprKind::negate ? "-" : "+") + ": '" + std::string(type_name(v)) + "'", e.line);
        if (e.kind == ExprKind::plus) {
          out = v.is_float() ? v : Value(v.as_int());
        } else {
          out = v.is_float() ? Value(-v.as_float()) : Value(-v.as_int());
        }
        return true;
      }
      case ExprKind::logical_not: {
        Value v;
        if (!eval(*e.args[0], v)) return false;
        out = Value(!truthy(v));
        return true;
      }
      case ExprKind::logical_and:
      case ExprKind::logical_or: {
        Value left;
        if (!eval(*e.args[0], left)) return false;
        const bool short_circuit = e.kind == ExprKind::logical_and ? !truthy(left) : truthy(left);
        if (short_circuit) {
          out = std::move(left);
          return true;
        }
        return eval(*e.args[1], out);
      }
      case ExprKind::conditional: {
        Value cond;
        if (!eval(*e.args[0], cond)) return false;
        if (truthy(cond)) return eval(*e.args[1], out);
        if (e.args[2]) return eval(*e.args[2], out);
        out = Value::undefined("conditional expression without else");
        return true;
      }
      case ExprKind::compare:
        return eval_compare(e, out);
      case ExprKind::binary:
        return eval_binary(e, out);
    }
    return render_error("unknown expression", e.line);
  }

  bool eval_compare(const Expr& e, Value& out) {
    Value left;
    if (!eval(*e.args[0], left)) return false;
    for (std::size_t i = 0; i < e.ops.size(); ++i) {
      Value right;
      if (!eval(*e.args[i + 1], right)) return false;
      const std::string& op = e.ops[i];
      bool result = false;
      if (op == "==" || op == "!=") {
        result = equals(left, right) == (op == "==");
      } else if (op == "in" || op == "not in") {
        if (right.is_undefined()) return undefined_error(right, e.line);
        auto r = apply_test("in", left, Args{right});
        if (!r) return forward(std::move(r.error()), e.line);
        result = *r == (op == "in");
      } else {
        if (left.is_undefined()) return undefined_error(left, e.line);
        if (right.is_undefined()) return undefined_error(right, e.line);
        bool ok = true;
        if (op == "<") result = less_than(left, right, ok);
        else if (op == ">") result = less_than(right, left, ok);
        else if (op == "<=") result = !less_than(right, left, ok);
        else result = !less_than(left, right, ok);
        if (!ok) {
          return render_error("'" + op + "' not supported between '" + std::string(type_name(left)) + "' and '" +
                                  std::string(type_name(right)) + "'", e.line);
        }
      }
      if (!result) {
        out = Value(false);
        return true;
      }
      left = std::move(right);
    }
    out = Value(true);
    return true;
  }

  bool eval_binary(const Expr& e, Value& out) {
    Value a;
    Value b;
    if (!eval(*e.args[0], a) || !eval(*e.args[1], b)) return false;
    const std::string& op = e.name;
    if (op == "~") {
      out = Value(to_str(a) + to_str(b));
      return total_ok(out, e.line);
    }
    if (a.is_undefined()) return undefined_error(a, e.line);
    if (b.is_undefined()) return undefined_error(b, e.line);
    auto type_error = [&] {
      return render_error("unsupported operand type(s) for " + op + ": '" + std::string(type_name(a)) + "' and '" +
                              std::string(type_name(b)) + "'", e.line);
    };
    if (op == "+" && a.is_string() && b.is_string()) {
      out = Value(a.str() + b.str());
      return total_ok(out, e.line);
    }
    if (op == "+" && a.is_list() && b.is_list()) {
      List l = a.list();
      l.insert(l.end(), b.list().begin(), b.list().end());
      out = Value(std::move(l));
      return true;
    }
    if (op == "*" && (a.is_string() || a.is_list() || b.is_string() || b.is_list())) {
      const Value& seq = a.is_string() || a.is_list() ? a : b;
      const Value& times = &seq == &a ? b : a;
      if (!times.is_int() && !times.is_bool()) return type_error();
      const std::int64_t n = std::max<std::int64_t>(0, times.as_int());
      const std::int64_t unit = seq.is_string() ? static_cast<std::int64_t>(seq.str().size()) : length(seq);
      if (n > 0 && unit > 0 && n > static_cast<std::int64_t>(limits_.max_output_bytes) / unit) {
        return render_error("repetition result too large", e.line);
      }
      if (seq.is_string()) {
        std::string s;
        for (std::int64_t i = 0; i < n; ++i) s += seq.str();
        out = Value(std::move(s));
      } else {
        List l;
        for (std::int64_t i = 0; i < n; ++i) l.insert(l.end(), seq.list().begin(), seq.list().end());
        out = Value(std::move(l));
      }
      return true;
    }
    if (!a.is_number() || !b.is_number()) return type_error();
    const bool floating = a.is_float() || b.is_float();
    if (op == "/") {
      if (b.as_float() == 0.0) return render_error("division by zero", e.line);
      out = Value(a.as_float() / b.as_float());
      return true;
    }
    if (floating) {
      const double x = a.as_float();
      const double y = b.as_float();
      if ((op == "//" || op == "%") && y == 0.0) return render_error("float division by zero", e.line);
      if (op == "+") out = Value(x + y);
      else if (op == "-") out = Value(x - y);
      else if (op == "*") out = Value(x * y);
      else if (op == "//") out = Value(std::floor(x / y));
      else if (op == "%") out = Value(x - std::floor(x / y) * y);
      else out = Value(std::pow(x, y));
      return true;
    }
    const std::int64_t x = a.as_int();
    const std::int64_t y = b.as_int();
    std::int64_t r = 0;
    bool overflow = false;
    if (op == "+") {
      overflow = __builtin_add_overflow(x, y, &r);
    } else if (op == "-") {
      overflow = __builtin_sub_overflow(x, y, &r);
    } else if (op == "*") {
      overflow = __builtin_mul_overflow(x, y, &r);
    } else if (op == "//" || op == "%") {
      if (y == 0) return render_error("integer division or modulo by zero", e.line);
      if (x == INT64_MIN && y == -1) return render_error("integer overflow", e.line);
      std::int64_t q = x / y;
      std::int64_t m = x % y;
      if (m != 0 && ((m < 0) != (y < 0))) {  // Python floors toward negative infinity
        --q;
        m += y;
      }
      r = op == "//" ? q : m;
    } else {  // **
      if (y < 0) {
        out = Value(std::pow(static_cast<double>(x), static_cast<double>(y)));
        return true;
      }
      r = 1;
      for (std::int64_t i = 0; i < y && !overflow; ++i) overflow = __builtin_mul_overflow(r, x, &r);
    }
    if (overflow) return render_error("integer overflow", e.line);
    out = Value(r);
    return true;
  }

  bool total_ok(const Value& v, int line) {
    if (v.is_string() && v.str().size() > limits_.max_output_bytes) return render_error("string result too large", line);
    return true;
  }

  bool eval_slice(const Expr& e, Value& out) {
    Value obj;
    if (!eval(*e.args[0], obj)) return false;
    if (obj.is_undefined()) return undefined_error(obj, e.line);
    std::int64_t bounds[3] = {0, 0, 1};
    bool given[3] = {false, false, false};
    for (int k = 0; k < 3; ++k) {
      if (!e.args[static_cast<std::size_t>(k) + 1]) continue;
      Value v;
      if (!eval(*e.args[static_cast<std::size_t>(k) + 1], v)) return false;
      if (v.is_none()) continue;
      if (!v.is_int() && !v.is_bool()) return render_error("slice indices must be integers or None", e.line);
      bounds[k] = v.as_int();
      given[k] = true;
    }
    List items;
    if (!(obj.is_list() || obj.is_string()) || !iterate(obj, items)) {
      return render_error("'" + std::string(type_name(obj)) + "' object is not subscriptable", e.line);
    }
    const auto n = static_cast<std::int64_t>(items.size());
    const std::int64_t step = given[2] ? bounds[2] : 1;
    if (step == 0) return render_error("slice step cannot be zero", e.line);
    // Python's slice.indices().
    auto clamp_index = [&](std::int64_t i, bool has, bool is_start) {
      if (!has) return step > 0 ? (is_start ? 0 : n) : (is_start ? n - 1 : -1);
      if (i < 0) i += n;
      if (step > 0) return std::clamp<std::int64_t>(i, 0, n);
      return std::clamp<std::int64_t>(i, -1, n - 1);
    };
    const std::int64_t start = clamp_index(bounds[0], given[0], true);
    const std::int64_t stop = clamp_index(bounds[1], given[1], false);
    List picked;
    for (std::int64_t i = start; step > 0 ? i < stop : i > stop; i += step) picked.push_back(items[static_cast<std::size_t>(i)]);
    if (obj.is_string()) {
      std::string s;
      for (const Value& v : picked) s += v.str();
      out = Value(std::move(s));
    } else {
      out = Value(std::move(picked));
    }
    return true;
  }

  const Dict& context_;
  const RenderLimits& limits_;
  std::vector<Dict> scopes_;
  int loop_depth_ = 0;
  std::uint64_t iterations_ = 0;
  std::size_t total_output_ = 0;
  bool failed_ = false;
  Error error_;
};

}  // namespace

Result<std::string, Error> render(const std::vector<Node>& program, const Dict& context, const RenderLimits& limits) {
  Renderer r(context, limits);
  return r.run(program);
}

}  // namespace sluice::jinja
