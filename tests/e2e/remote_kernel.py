"""A kernel of a remote Jupyter server, driven as a browser drives it: REST to start it, then the
kernel protocol over the server's websocket.

    kernel = RemoteKernel("http://127.0.0.1:8000/user/ada", token).start()
    output = kernel.run("print(1 + 1)")     # "2\n"; a cell that raises raises RemoteCellError
    kernel.shutdown()

The token goes in the Authorization header of every request and of the websocket's handshake;
through JupyterHub, a token with the `access:servers` scope for the user will do.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from datetime import datetime, timezone

import requests
import websocket

ANSI_COLOUR = re.compile(r"\x1b\[[0-9;]*m")


class RemoteCellError(AssertionError):
    """The code raised in the remote kernel; the message is its traceback."""


class RemoteKernel:
    def __init__(self, server_url: str, token: str, kernel_name: str = "python3") -> None:
        self.server_url = server_url.rstrip("/")
        self.kernel_name = kernel_name
        self.headers = {"Authorization": f"token {token}"}
        self.session = uuid.uuid4().hex
        self.kernel_id: str | None = None
        self.socket: websocket.WebSocket | None = None

    def start(self, timeout: float = 60.0) -> "RemoteKernel":
        response = requests.post(f"{self.server_url}/api/kernels", json={"name": self.kernel_name},
                                 headers=self.headers, timeout=timeout)
        response.raise_for_status()
        self.kernel_id = response.json()["id"]
        url = self.server_url.replace("http", "ws", 1) + f"/api/kernels/{self.kernel_id}/channels?session_id={self.session}"
        self.socket = websocket.create_connection(
            url, header=[f"{name}: {value}" for name, value in self.headers.items()], timeout=timeout)
        self.run("pass", timeout)  # answers once the kernel itself is up
        return self

    def _message(self, code: str) -> dict:
        return {
            "header": {"msg_id": uuid.uuid4().hex, "msg_type": "execute_request", "session": self.session,
                       "username": "test", "version": "5.3", "date": datetime.now(timezone.utc).isoformat()},
            "parent_header": {}, "metadata": {}, "buffers": [], "channel": "shell",
            "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True},
        }

    def run(self, code: str, timeout: float = 120.0) -> str:
        """Execute `code`; returns what it printed on stdout, once the kernel is idle again."""
        request = self._message(code)
        self.socket.send(json.dumps(request))
        msg_id = request["header"]["msg_id"]
        stdout, error, replied, idle = [], None, False, False
        deadline = time.monotonic() + timeout
        while not (replied and idle):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"the remote kernel did not finish within {timeout:g}s:\n{code}\n--- so far ---\n"
                                   + "".join(stdout))
            self.socket.settimeout(remaining)
            frame = self.socket.recv()
            if isinstance(frame, bytes):  # a message with binary buffers: none of ours
                continue
            message = json.loads(frame)
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "stream" and content["name"] == "stdout":
                stdout.append(content["text"])
            elif kind == "error":
                error = ANSI_COLOUR.sub("", "\n".join(content["traceback"]))
            elif kind == "execute_reply":
                replied = True
            elif kind == "status" and content["execution_state"] == "idle":
                idle = True
        if error is not None:
            raise RemoteCellError(f"in the remote kernel:\n{code}\n--- raised ---\n{error}")
        return "".join(stdout)

    def shutdown(self) -> None:
        if self.socket is not None:
            self.socket.close()
        if self.kernel_id is not None:
            try:
                requests.delete(f"{self.server_url}/api/kernels/{self.kernel_id}", headers=self.headers, timeout=30)
            except requests.RequestException:
                pass  # the server is going too; its kernels go with it
