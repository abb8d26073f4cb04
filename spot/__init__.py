"""The spot application: what `evaluate.py spot` makes of a spotted video for a person to look at.

It plans the jobs (which files are one game, their halves, the output names), and writes the views of each spotted
video: the list of actions, the timeline picture, the page that plays the video beside its actions, an index of the
pages, and the highlight clips. Computing the scores (streaming inference over a video file, NMS) is inference and
post-processing: `evaluation/streaming.py` and `evaluation/postprocess.py`; decoding is the video layer's
(`data/video.py`, `data/decode_pool.py`).
"""
