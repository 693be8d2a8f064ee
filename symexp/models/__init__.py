"""Networks. Small ones are ensemble-native: parameters carry a leading member axis K."""
