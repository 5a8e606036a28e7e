"""reflow: a stream-processing language compiled to asyncio workers."""
