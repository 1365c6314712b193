"""Locust's quickstart, as scenarios/guide/blog.toml says it."""
from locust import HttpUser, between, task


class Reader(HttpUser):
    wait_time = between(0.01, 0.02)

    @task(2)
    def home(self):
        self.client.get("/", name="home")

    @task(1)
    def posts(self):
        self.client.get("/api/posts", name="posts")
