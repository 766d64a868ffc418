"""The wire protocols one server speaks: KServe v2 (with the repository extension), TF-Serving, plain."""
