"""The flow, as scenarios/guide/flow.toml says it."""
from locust import HttpUser, between, task


class Writer(HttpUser):
    wait_time = between(0.01, 0.02)

    @task
    def post_comment_read(self):
        index = self.environment.runner.user_count
        post = self.client.post("/api/posts", json={"title": "hello", "body": "first post", "userId": index}).json()
        comment = self.client.post(
            f"/api/posts/{post['id']}/comments", json={"body": "first!"}, name="/api/posts/[id]/comments"
        ).json()
        self.client.get(f"/api/comments/{comment['id']}", name="/api/comments/[id]")
