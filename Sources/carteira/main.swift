await Carteira.runAsMain()
