print("carteira")
