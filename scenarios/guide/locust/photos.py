"""The photo browser, as scenarios/guide/photos.toml says it."""
import random

from locust import HttpUser, between, task


class Browser(HttpUser):
    wait_time = between(0.01, 0.02)

    @task
    def photo(self):
        photo_id = random.randint(1, 1000)
        with self.client.get(f"/api/photos/{photo_id}", name="/api/photos/[id]", catch_response=True) as response:
            album_id = response.json()["albumId"]
            if album_id % 10 == 0:
                response.failure(f"album id cannot be {album_id}")
