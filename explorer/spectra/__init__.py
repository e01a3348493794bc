"""Pure linear algebra on tensors and arrays: no streamlit, no plotly, no models."""
