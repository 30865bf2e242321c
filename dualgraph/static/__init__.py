"""static: the typed SSA IR, tracer, control flow, interpreter, IR autodiff and passes."""
from .autodiff import grad_graph, vjp_graph
from .autograph import AutographError, convert, do_not_convert, to_source, trace
from .control_flow import ControlFlowError, cond, fori_loop, while_loop
from .interpreter import GraphExecutionError, eval_graph
from .ir import Eqn, Graph, Lit, Var, run
from .passes import optimize
from .tracer import TracerError
from .verify import VerifyError, verify

__all__ = ["Graph", "Eqn", "Var", "Lit", "run", "trace", "TracerError", "cond", "while_loop",
           "fori_loop", "ControlFlowError", "eval_graph", "GraphExecutionError", "vjp_graph",
           "grad_graph", "verify", "VerifyError", "optimize", "convert", "to_source",
           "do_not_convert", "AutographError"]
