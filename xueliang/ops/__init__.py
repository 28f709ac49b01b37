"""Operations: online/intact rates, video-quality diagnosis, reports (later work)."""
