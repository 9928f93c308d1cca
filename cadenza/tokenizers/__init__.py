"""What turns music and text into model inputs: REMI tokens (miditok + control tokens + grammar),
text -> musical controls, and the offline text encoder shared by the text-conditioned families."""
