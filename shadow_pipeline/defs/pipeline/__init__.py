"""The whole flow per partition: pipeline_job, the closed-window sensor and the hourly schedule."""
