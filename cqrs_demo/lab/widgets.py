"""Forms that send commands: each button calls a `WorkbenchClient` method and shows the exchange.

The forms add nothing of their own: what a click does, `client.create_product(...)` and the
other methods do headless, which is how the notebooks run under test.
"""

from __future__ import annotations

import ipywidgets as w

from cqrs_demo.lab.client import Exchange, WorkbenchClient, money


def _exchange_output() -> w.Output:
    return w.Output(layout=w.Layout(border="1px solid #ccc", padding="4px", max_height="320px", overflow="auto"))


def _show(output: w.Output, exchange: Exchange) -> None:
    # Set as the widget's output rather than printed inside `with output:`: that capture sends the
    # cell's own output through the widget, and a headless executor (nbclient: `make tour`, the
    # student's-edition test) then waited for the cell's reply until its timeout.
    output.outputs = ({"output_type": "stream", "name": "stdout", "text": f"{exchange}\n"},)


class ProductForm(w.VBox):
    """Create, update (PATCH) and delete a product."""

    def __init__(self, client: WorkbenchClient) -> None:
        self.client = client
        self.product_id = w.IntText(description="id", value=1)
        self.name = w.Text(description="name", value="Product A")
        self.description = w.Text(description="description", value="Product Test")
        self.price = w.Text(description="price", value="120")
        self.quantity = w.IntText(description="quantity", value=3)
        self.sku = w.Text(description="sku", value="SKU-DEMO-0024")
        self.if_match = w.Text(description="If-Match", placeholder="version (optional)")
        self.output = _exchange_output()
        create = w.Button(description="Create", button_style="success")
        update = w.Button(description="Update", button_style="info")
        delete = w.Button(description="Delete", button_style="danger")
        create.on_click(lambda _: self.create())
        update.on_click(lambda _: self.update())
        delete.on_click(lambda _: self.delete())
        super().__init__(
            [
                w.HTML("<b>Product command</b>"),
                w.HBox([self.product_id, self.if_match]),
                self.name, self.description, self.price, self.quantity, self.sku,
                w.HBox([create, update, delete]),
                self.output,
            ]
        )
        self.add_class("cqrs-product-form")

    def _if_match(self) -> int | None:
        text = self.if_match.value.strip()
        return int(text) if text.isdigit() else None

    def create(self) -> Exchange:
        exchange = self.client.create_product(
            self.name.value, money(self.price.value), self.quantity.value, self.sku.value, self.description.value
        )
        if exchange.ok:
            self.product_id.value = exchange.body["id"]
        _show(self.output, exchange)
        return exchange

    def update(self) -> Exchange:
        exchange = self.client.update_product(
            self.product_id.value,
            if_match=self._if_match(),
            name=self.name.value,
            description=self.description.value,
            price=money(self.price.value),
            quantity=self.quantity.value,
            sku=self.sku.value,
        )
        _show(self.output, exchange)
        return exchange

    def delete(self) -> Exchange:
        exchange = self.client.delete_product(self.product_id.value, if_match=self._if_match())
        _show(self.output, exchange)
        return exchange


class OrderForm(w.VBox):
    """Place an order of one or more lines (`SKU x quantity, ...`) and cancel an order."""

    def __init__(self, client: WorkbenchClient) -> None:
        self.client = client
        self.customer = w.Text(description="customer", value="ada")
        self.lines = w.Text(description="lines", value="SKU-DEMO-0024 x 1", placeholder="SKU x 2, OTHER x 1")
        self.order_id = w.IntText(description="order id", value=1)
        self.output = _exchange_output()
        place = w.Button(description="Place order", button_style="success")
        cancel = w.Button(description="Cancel order", button_style="warning")
        place.on_click(lambda _: self.place())
        cancel.on_click(lambda _: self.cancel())
        super().__init__(
            [
                w.HTML("<b>Order command</b>"),
                self.customer, self.lines, w.HBox([place]),
                w.HBox([self.order_id, cancel]),
                self.output,
            ]
        )
        self.add_class("cqrs-order-form")

    @staticmethod
    def parse_lines(text: str) -> list[dict]:
        lines = []
        for part in filter(None, (p.strip() for p in text.split(","))):
            sku, _, quantity = part.rpartition(" x ")
            lines.append({"sku": sku.strip() or part, "quantity": int(quantity) if quantity.strip().isdigit() else 1})
        return lines

    def place(self) -> Exchange:
        exchange = self.client.place_order(self.customer.value, self.parse_lines(self.lines.value))
        if exchange.ok:
            self.order_id.value = exchange.body["id"]
        _show(self.output, exchange)
        return exchange

    def cancel(self) -> Exchange:
        exchange = self.client.cancel_order(self.order_id.value)
        _show(self.output, exchange)
        return exchange
