"""Log in and out, as scenarios/guide/login.toml says it."""
import itertools

from locust import HttpUser, between, task

numbers = itertools.count()


class Member(HttpUser):
    wait_time = between(0.05, 0.1)

    def on_start(self):
        self.client.post("/api/login", json={"username": f"member{next(numbers)}", "password": "secret"})

    def on_stop(self):
        self.client.post("/api/logout")

    @task
    def me(self):
        self.client.get("/api/me")
