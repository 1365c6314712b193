"""Shared posts, as scenarios/guide/shared.toml says it."""
import random

from locust import HttpUser, constant, task

created_posts = []


class Writer(HttpUser):
    weight = 1
    wait_time = constant(0.2)

    @task
    def write(self):
        post = self.client.post("/api/posts", json={"title": "shared"}).json()
        created_posts.append(post["id"])


class Reader(HttpUser):
    weight = 3
    wait_time = constant(0.05)

    @task
    def read(self):
        if not created_posts:
            return
        self.client.get(f"/api/posts/{random.choice(created_posts)}", name="/api/posts/[id]")
