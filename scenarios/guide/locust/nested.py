"""A nested task set with an interrupt, as scenarios/guide/nested.toml says it."""
import random

from locust import HttpUser, TaskSet, between, task


class Album(TaskSet):
    @task(3)
    def photo(self):
        self.client.get(f"/api/photos/{random.randint(1, 50)}", name="photo")

    @task(1)
    def cover(self):
        self.client.get("/api/photos/1", name="cover")

    @task(1)
    def leave(self):
        self.interrupt()


class Visitor(HttpUser):
    wait_time = between(0.01, 0.02)
    tasks = {Album: 1}

    @task(1)
    def home(self):
        self.client.get("/", name="home")
