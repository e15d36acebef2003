print("carteira-server")
