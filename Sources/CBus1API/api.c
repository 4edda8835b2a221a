/* The header is the API; libbus1 implements it in Swift (Sources/libbus1). */
