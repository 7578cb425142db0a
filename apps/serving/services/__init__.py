"""The inference API's services: model resolution (catalog), embeddings / classification /
entities (inference) and chat completions (chat)."""
