"""The workbench: what the notebooks import, so that their cells stay short.

    from cqrs_demo.lab import LabStack, WorkbenchClient
    stack = LabStack("nb01").start()
    client = WorkbenchClient.for_stack(stack)
"""

from cqrs_demo.lab.client import Exchange, WorkbenchClient
from cqrs_demo.lab.lag import LagMonitor, plot_backlog, plot_latency
from cqrs_demo.lab.load import LoadGenerator, latency_summary
from cqrs_demo.lab.side_by_side import SideBySide, orders_side_by_side, products_side_by_side
from cqrs_demo.lab.stack import LabStack
from cqrs_demo.lab.staleness import explain_product
from cqrs_demo.lab.timeline import plot as plot_timeline
from cqrs_demo.lab.timeline import trace
from cqrs_demo.lab.widgets import OrderForm, ProductForm

__all__ = [
    "Exchange",
    "LabStack",
    "LagMonitor",
    "LoadGenerator",
    "OrderForm",
    "ProductForm",
    "SideBySide",
    "WorkbenchClient",
    "explain_product",
    "latency_summary",
    "orders_side_by_side",
    "plot_backlog",
    "plot_latency",
    "plot_timeline",
    "products_side_by_side",
    "trace",
]
