{
  "targets": [
    {
      "target_name": "frame_cipher",
      "sources": ["native/frame-cipher.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Werror"]
    }
  ]
}
