"""Reading every digit of a picture: synthetic scenes, the learned digit finder, and finder -> crops -> `Net`."""
