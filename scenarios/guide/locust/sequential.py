"""A sequential task set with a repeated task, as scenarios/guide/sequential.toml says it."""
import random

from locust import HttpUser, SequentialTaskSet, constant, task


class Checkout(SequentialTaskSet):
    def browse(self):
        self.client.get(f"/api/photos/{random.randint(1, 50)}", name="browse")

    def pay(self):
        self.client.post("/api/echo", json={"amount": 42}, name="pay")

    tasks = [browse, browse, browse, pay]


class Shopper(HttpUser):
    wait_time = constant(0.1)
    tasks = [Checkout]
