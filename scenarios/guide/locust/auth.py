"""A token from another host, as scenarios/guide/auth.toml says it (AUTH_HOST: the auth server)."""
import itertools
import os

import requests
from locust import HttpUser, between, task

numbers = itertools.count()
AUTH_HOST = os.environ.get("AUTH_HOST", "http://127.0.0.1:8081")


class Client(HttpUser):
    wait_time = between(0.05, 0.1)

    def on_start(self):
        reply = requests.post(f"{AUTH_HOST}/api/login", json={"username": f"client{next(numbers)}", "password": "secret"})
        self.client.headers["Authorization"] = f"Bearer {reply.json()['token']}"

    @task
    def echo(self):
        self.client.get("/api/echo", name="echo")
