cd svc && uv add httpx; pip install 'requests==2.31.0' || poetry add pyqt5
uv pip install rich